//! The values a pickle holds, as the reader builds them.

use std::rc::Rc;

use super::MAX_DEPTH;

/// A value read from a pickle.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// Python's `None`.
    None,
    /// A bool.
    Bool(bool),
    /// An integer that fits in 64 bits.
    Int(i64),
    /// A unicode string.
    Str(String),
    /// A byte string (Python 2 `str`, Python 3 `bytes` or `bytearray`).
    Bytes(Rc<Vec<u8>>),
    /// A list.
    List(Vec<Value>),
    /// A tuple.
    Tuple(Vec<Value>),
    /// A dict, in insertion order.
    Dict(Vec<(Value, Value)>),
    /// A C-ordered numpy array of `uint8`.
    Array {
        /// The array's dimensions.
        shape: Vec<usize>,
        /// The values, row-major.
        data: Rc<Vec<u8>>,
    },
    /// One of the few accepted globals, as (module, name).
    Global(&'static str, &'static str),
    /// A numpy dtype, by its type string (only "u1" is accepted).
    Dtype,
    /// An ndarray created by `_reconstruct`, waiting for its state (BUILD).
    EmptyArray,
}

impl Value {
    /// The value under `key` in a dict whose keys are byte strings or unicode strings.
    pub fn get(&self, key: &str) -> Option<&Value> {
        let Value::Dict(items) = self else {
            return None;
        };
        items.iter().find_map(|(k, v)| match k {
            Value::Str(s) if s == key => Some(v),
            Value::Bytes(b) if b.as_slice() == key.as_bytes() => Some(v),
            _ => None,
        })
    }

    /// The text of a `Str` or (UTF-8) `Bytes` value.
    pub fn as_text(&self) -> Option<String> {
        match self {
            Value::Str(s) => Some(s.clone()),
            Value::Bytes(b) => std::str::from_utf8(b).ok().map(str::to_string),
            _ => None,
        }
    }

    pub(super) fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Str(_) => "str",
            Value::Bytes(_) => "bytes",
            Value::List(_) => "list",
            Value::Tuple(_) => "tuple",
            Value::Dict(_) => "dict",
            Value::Array { .. } => "ndarray",
            Value::Global(..) => "global",
            Value::Dtype => "dtype",
            Value::EmptyArray => "empty ndarray",
        }
    }

    /// Nesting depth, stopping early past [`MAX_DEPTH`].
    pub(super) fn depth(&self) -> usize {
        let children: &mut dyn Iterator<Item = &Value> = match self {
            Value::List(v) | Value::Tuple(v) => &mut v.iter(),
            Value::Dict(kv) => &mut kv.iter().flat_map(|(k, v)| [k, v]),
            _ => return 0,
        };
        let mut d = 0;
        for c in children {
            d = d.max(c.depth());
            if d > MAX_DEPTH {
                break;
            }
        }
        d + 1
    }

    /// The number of nodes, the cost of cloning this value.
    pub(super) fn weight(&self) -> usize {
        match self {
            Value::List(v) | Value::Tuple(v) => 1 + v.iter().map(Value::weight).sum::<usize>(),
            Value::Dict(kv) => {
                1 + kv
                    .iter()
                    .map(|(k, v)| k.weight() + v.weight())
                    .sum::<usize>()
            }
            _ => 1,
        }
    }
}
