//! A safe reader for the pickles of the CIFAR python datasets.
//!
//! It understands exactly the opcodes those files use: Python 2's `cPickle` protocol 2
//! (byte-string keys, arrays through `numpy.core.multiarray._reconstruct`) and the same
//! data re-saved by Python 3 with protocols 2 to 5 (`numpy._core` names, `_codecs.encode`
//! for bytes under protocol 2, `_frombuffer` under protocol 5). It never imports or calls
//! anything: the few globals it accepts are recognised by name and turned into plain values,
//! and any other opcode or global is refused with the offset where it appeared.
//!
//! Allocation is bounded by the input: lengths are checked against the bytes left before
//! anything is allocated, copies out of the memo are charged against a budget proportional
//! to the file size, and nesting is limited to [`MAX_DEPTH`] levels.

mod opcodes;
mod value;

use opcodes::*;
pub use value::Value;

use std::collections::HashMap;
use std::rc::Rc;

use crate::DataError;

/// The deepest nesting of lists, tuples and dicts accepted.
pub const MAX_DEPTH: usize = 32;

/// The globals a CIFAR pickle may name; anything else is refused.
const GLOBALS: [(&str, &str); 10] = [
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
    ("__builtin__", "bytes"),
    ("builtins", "bytes"),
    ("__builtin__", "bytearray"),
];

struct Reader<'a> {
    name: &'a str,
    bytes: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
    budget: usize,
}

/// Parses a pickle of the kind the CIFAR python datasets use and returns its value.
pub fn parse(name: &str, bytes: &[u8]) -> Result<Value, DataError> {
    let mut r = Reader {
        name,
        bytes,
        pos: 0,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        budget: bytes.len().saturating_mul(4).saturating_add(1024),
    };
    r.run()
}

impl<'a> Reader<'a> {
    fn err(&self, expected: impl Into<String>, found: impl Into<String>) -> DataError {
        DataError::new(
            self.name,
            expected,
            format!("{} at byte {}", found.into(), self.pos),
        )
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DataError> {
        let left = self.bytes.len() - self.pos;
        if n > left {
            return Err(self.err(
                format!("{n} more bytes"),
                format!("{left} bytes left (truncated pickle)"),
            ));
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, DataError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, DataError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, DataError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, DataError> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(b.try_into().unwrap_or([0xff; 8])))
    }

    fn len64(&mut self) -> Result<usize, DataError> {
        let n = self.u64()?;
        usize::try_from(n).map_err(|_| self.err("a length that fits in memory", format!("{n}")))
    }

    fn line(&mut self) -> Result<&'a str, DataError> {
        let rest = &self.bytes[self.pos..];
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| self.err("a newline-terminated name", "end of file"))?;
        let s = std::str::from_utf8(&rest[..end])
            .map_err(|_| self.err("an ASCII name", "invalid UTF-8"))?;
        self.pos += end + 1;
        Ok(s)
    }

    fn pop(&mut self) -> Result<Value, DataError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(self.err("a value on the stack", "an empty stack"));
        }
        self.stack
            .pop()
            .ok_or_else(|| self.err("a value on the stack", "an empty stack"))
    }

    fn pop_mark(&mut self) -> Result<Vec<Value>, DataError> {
        let m = self.marks.pop().ok_or_else(|| self.err("a MARK", "none"))?;
        Ok(self.stack.split_off(m))
    }

    fn top(&mut self) -> Result<&mut Value, DataError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(self.err("a value on the stack", "an empty stack"));
        }
        let pos = self.pos;
        let name = self.name;
        self.stack.last_mut().ok_or_else(|| {
            DataError::new(
                name,
                "a value on the stack",
                format!("an empty stack at byte {pos}"),
            )
        })
    }

    fn check_depth(&self, v: &Value) -> Result<(), DataError> {
        if v.depth() >= MAX_DEPTH {
            return Err(self.err(
                format!("nesting below {MAX_DEPTH} levels"),
                "deeper nesting",
            ));
        }
        Ok(())
    }

    fn push_container(&mut self, v: Value) -> Result<(), DataError> {
        self.check_depth(&v)?;
        self.stack.push(v);
        Ok(())
    }

    fn memo_put(&mut self, key: u32) -> Result<(), DataError> {
        let v = self.top()?.clone();
        self.charge(v.weight())?;
        self.memo.insert(key, v);
        Ok(())
    }

    fn memo_get(&mut self, key: u32) -> Result<(), DataError> {
        let v = self
            .memo
            .get(&key)
            .cloned()
            .ok_or_else(|| self.err("a memo entry", format!("no entry {key}")))?;
        self.charge(v.weight())?;
        self.stack.push(v);
        Ok(())
    }

    fn charge(&mut self, cost: usize) -> Result<(), DataError> {
        self.budget = self.budget.checked_sub(cost).ok_or_else(|| {
            self.err(
                "a pickle whose values are no larger than its file justifies",
                "too many copies",
            )
        })?;
        Ok(())
    }

    fn bytes_value(&mut self, n: usize) -> Result<Value, DataError> {
        Ok(Value::Bytes(Rc::new(self.take(n)?.to_vec())))
    }

    fn str_value(&mut self, n: usize) -> Result<Value, DataError> {
        let b = self.take(n)?;
        let s = std::str::from_utf8(b).map_err(|_| self.err("a UTF-8 string", "invalid UTF-8"))?;
        Ok(Value::Str(s.to_string()))
    }

    fn global(&self, module: &str, name: &str) -> Result<Value, DataError> {
        GLOBALS
            .iter()
            .find(|(m, n)| *m == module && *n == name)
            .map(|(m, n)| Value::Global(m, n))
            .ok_or_else(|| {
                self.err(
                    "a numpy array global (the only ones CIFAR pickles use)",
                    format!("global {module}.{name}"),
                )
            })
    }

    fn run(&mut self) -> Result<Value, DataError> {
        loop {
            let at = self.pos;
            let op = self.u8()?;
            match op {
                PROTO => {
                    let p = self.u8()?;
                    if !(2..=5).contains(&p) {
                        return Err(self.err("pickle protocol 2 to 5", format!("protocol {p}")));
                    }
                }
                FRAME => {
                    self.u64()?; // a size hint only
                }
                STOP => {
                    let v = self.pop()?;
                    if !self.stack.is_empty() || !self.marks.is_empty() {
                        return Err(self.err("an empty stack at STOP", "leftover values"));
                    }
                    return Ok(v);
                }
                MARK => self.marks.push(self.stack.len()),
                EMPTY_DICT => self.stack.push(Value::Dict(Vec::new())),
                EMPTY_LIST => self.stack.push(Value::List(Vec::new())),
                EMPTY_TUPLE => self.stack.push(Value::Tuple(Vec::new())),
                NONE => self.stack.push(Value::None),
                NEWTRUE => self.stack.push(Value::Bool(true)),
                NEWFALSE => self.stack.push(Value::Bool(false)),
                BININT1 => {
                    let v = self.u8()?;
                    self.stack.push(Value::Int(v as i64));
                }
                BININT2 => {
                    let v = self.u16()?;
                    self.stack.push(Value::Int(v as i64));
                }
                BININT => {
                    let v = self.u32()? as i32;
                    self.stack.push(Value::Int(v as i64));
                }
                LONG1 => {
                    let n = self.u8()? as usize;
                    if n > 8 {
                        return Err(self.err("an integer of at most 8 bytes", format!("{n} bytes")));
                    }
                    let b = self.take(n)?;
                    let mut buf = if b.last().is_some_and(|&x| x & 0x80 != 0) {
                        [0xff; 8]
                    } else {
                        [0; 8]
                    };
                    buf[..n].copy_from_slice(b);
                    self.stack.push(Value::Int(i64::from_le_bytes(buf)));
                }
                SHORT_BINSTRING | SHORT_BINBYTES => {
                    let n = self.u8()? as usize;
                    let v = self.bytes_value(n)?;
                    self.stack.push(v);
                }
                BINSTRING => {
                    let n = self.u32()? as i32;
                    if n < 0 {
                        return Err(self.err("a non-negative string length", format!("{n}")));
                    }
                    let v = self.bytes_value(n as usize)?;
                    self.stack.push(v);
                }
                BINBYTES => {
                    let n = self.u32()? as usize;
                    let v = self.bytes_value(n)?;
                    self.stack.push(v);
                }
                BINBYTES8 | BYTEARRAY8 => {
                    let n = self.len64()?;
                    let v = self.bytes_value(n)?;
                    self.stack.push(v);
                }
                SHORT_BINUNICODE => {
                    let n = self.u8()? as usize;
                    let v = self.str_value(n)?;
                    self.stack.push(v);
                }
                BINUNICODE => {
                    let n = self.u32()? as usize;
                    let v = self.str_value(n)?;
                    self.stack.push(v);
                }
                BINUNICODE8 => {
                    let n = self.len64()?;
                    let v = self.str_value(n)?;
                    self.stack.push(v);
                }
                BINPUT => {
                    let k = self.u8()? as u32;
                    self.memo_put(k)?;
                }
                LONG_BINPUT => {
                    let k = self.u32()?;
                    self.memo_put(k)?;
                }
                MEMOIZE => {
                    let k = u32::try_from(self.memo.len()).unwrap_or(u32::MAX);
                    self.memo_put(k)?;
                }
                BINGET => {
                    let k = self.u8()? as u32;
                    self.memo_get(k)?;
                }
                LONG_BINGET => {
                    let k = self.u32()?;
                    self.memo_get(k)?;
                }
                GLOBAL => {
                    let module = self.line()?;
                    let name = self.line()?;
                    let g = self.global(module, name)?;
                    self.stack.push(g);
                }
                STACK_GLOBAL => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (Value::Str(m), Value::Str(n)) = (&module, &name) else {
                        return Err(self.err(
                            "two strings for STACK_GLOBAL",
                            format!("{} and {}", module.kind(), name.kind()),
                        ));
                    };
                    let g = self.global(m, n)?;
                    self.stack.push(g);
                }
                TUPLE1..=TUPLE3 => {
                    let n = (op - TUPLE1 + 1) as usize;
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    self.push_container(Value::Tuple(items))?;
                }
                TUPLE => {
                    let items = self.pop_mark()?;
                    self.push_container(Value::Tuple(items))?;
                }
                APPEND => {
                    let v = self.pop()?;
                    self.append(vec![v])?;
                }
                APPENDS => {
                    let items = self.pop_mark()?;
                    self.append(items)?;
                }
                SETITEM => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.set_items(vec![k, v])?;
                }
                SETITEMS => {
                    let items = self.pop_mark()?;
                    self.set_items(items)?;
                }
                REDUCE => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let v = self.reduce(callable, args)?;
                    self.stack.push(v);
                }
                BUILD => {
                    let state = self.pop()?;
                    let obj = self.pop()?;
                    let v = self.build(obj, state)?;
                    self.stack.push(v);
                }
                _ => {
                    self.pos = at;
                    return Err(self.err(
                        "an opcode used by CIFAR pickles",
                        format!("opcode 0x{op:02x} ({:?})", op as char),
                    ));
                }
            }
        }
    }

    fn append(&mut self, items: Vec<Value>) -> Result<(), DataError> {
        for v in &items {
            self.check_depth(v)?;
        }
        match self.top()? {
            Value::List(l) => {
                l.extend(items);
                Ok(())
            }
            other => {
                let k = other.kind();
                Err(self.err("a list to append to", k))
            }
        }
    }

    fn set_items(&mut self, items: Vec<Value>) -> Result<(), DataError> {
        if !items.len().is_multiple_of(2) {
            return Err(self.err("key-value pairs", format!("{} values", items.len())));
        }
        for v in &items {
            self.check_depth(v)?;
        }
        match self.top()? {
            Value::Dict(d) => {
                let mut it = items.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    d.push((k, v));
                }
                Ok(())
            }
            other => {
                let k = other.kind();
                Err(self.err("a dict to set items in", k))
            }
        }
    }

    fn reduce(&self, callable: Value, args: Value) -> Result<Value, DataError> {
        let Value::Tuple(args) = args else {
            return Err(self.err("a tuple of arguments", args.kind()));
        };
        let Value::Global(module, name) = callable else {
            return Err(self.err("a global to call", callable.kind()));
        };
        match (name, args.as_slice()) {
            ("_reconstruct", [Value::Global("numpy", "ndarray"), Value::Tuple(_), _]) => {
                Ok(Value::EmptyArray)
            }
            ("dtype", [t, ..]) => match t.as_text().as_deref() {
                Some("u1") | Some("|u1") | Some("uint8") => Ok(Value::Dtype),
                other => Err(self.err("dtype u1 (uint8)", format!("dtype {other:?}"))),
            },
            ("encode", [Value::Str(s), Value::Str(enc)]) if enc == "latin1" || enc == "latin-1" => {
                let bytes: Option<Vec<u8>> =
                    s.chars().map(|c| u8::try_from(c as u32).ok()).collect();
                let bytes =
                    bytes.ok_or_else(|| self.err("latin-1 text", "a character above U+00FF"))?;
                Ok(Value::Bytes(Rc::new(bytes)))
            }
            ("bytes" | "bytearray", []) => Ok(Value::Bytes(Rc::new(Vec::new()))),
            ("_frombuffer", [Value::Bytes(buf), Value::Dtype, Value::Tuple(shape), order]) => {
                if order.as_text().as_deref() != Some("C") {
                    return Err(self.err("C-ordered array data", format!("order {order:?}")));
                }
                self.array(shape, Rc::clone(buf))
            }
            _ => Err(self.err(
                "arguments this global takes in CIFAR pickles",
                format!("{module}.{name} with {} arguments", args.len()),
            )),
        }
    }

    fn array(&self, shape: &[Value], data: Rc<Vec<u8>>) -> Result<Value, DataError> {
        let dims: Option<Vec<usize>> = shape
            .iter()
            .map(|d| match d {
                Value::Int(n) => usize::try_from(*n).ok(),
                _ => None,
            })
            .collect();
        let dims =
            dims.ok_or_else(|| self.err("a shape of non-negative integers", format!("{shape:?}")))?;
        let n = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        if n != Some(data.len()) {
            return Err(self.err(
                format!(
                    "{dims:?} = {} bytes of array data",
                    n.map_or("too many".into(), |n| n.to_string())
                ),
                format!("{} bytes", data.len()),
            ));
        }
        Ok(Value::Array { shape: dims, data })
    }

    fn build(&self, obj: Value, state: Value) -> Result<Value, DataError> {
        match (obj, state) {
            (Value::Dtype, Value::Tuple(s)) => {
                // (version, byte order, subarray, names, fields, elsize, alignment, flags)
                match s.get(1).and_then(Value::as_text).as_deref() {
                    Some("|") | Some("<") | Some("=") | None => Ok(Value::Dtype),
                    Some(o) => Err(self.err("a single-byte dtype", format!("byte order {o:?}"))),
                }
            }
            (Value::EmptyArray, Value::Tuple(s)) => {
                // (version, shape, dtype, is_fortran, data), or the same without the version.
                let s = if s.len() == 5 { &s[1..] } else { &s[..] };
                match s {
                    [
                        Value::Tuple(shape),
                        Value::Dtype,
                        fortran,
                        Value::Bytes(raw),
                    ] => {
                        let fortran = matches!(fortran, Value::Bool(true))
                            || matches!(fortran, Value::Int(n) if *n != 0);
                        if fortran && shape.len() > 1 {
                            return Err(self.err("a C-ordered array", "a Fortran-ordered one"));
                        }
                        self.array(shape, Rc::clone(raw))
                    }
                    _ => Err(self.err(
                        "ndarray state (shape, dtype u1, fortran flag, raw bytes)",
                        format!("{} values", s.len()),
                    )),
                }
            }
            (obj, state) => Err(self.err(
                "BUILD of an ndarray or dtype",
                format!("BUILD of {} with {}", obj.kind(), state.kind()),
            )),
        }
    }
}
