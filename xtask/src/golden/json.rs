//! Reading one golden file: the `ember-golden/1` JSON layout, with errors that name the
//! key that is missing or malformed.

use serde_json::{Map, Value};

/// A tensor as stored: shape and flat row-major f64 data.
#[derive(Clone, Debug, PartialEq)]
pub struct GoldenTensor {
    /// The dimensions (`[]` for a scalar).
    pub shape: Vec<usize>,
    /// The values, row-major.
    pub data: Vec<f64>,
}

impl GoldenTensor {
    /// The values as f32 (inputs are exactly representable in f32).
    pub fn f32s(&self) -> Vec<f32> {
        self.data.iter().map(|&v| v as f32).collect()
    }
}

/// One parsed golden case.
#[derive(Debug)]
pub struct Golden {
    /// The case name (`case`, falling back to the file name).
    pub case: String,
    /// Which operation (`kind`).
    pub kind: String,
    params: Map<String, Value>,
    inputs: Map<String, Value>,
    expected: Map<String, Value>,
}

/// The format tag this runner understands.
pub const FORMAT: &str = "ember-golden/1";

fn object(root: &Map<String, Value>, key: &str) -> Result<Map<String, Value>, String> {
    match root.get(key) {
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(_) => Err(format!("key \"{key}\" is not an object")),
        None => Err(format!("missing key \"{key}\"")),
    }
}

impl Golden {
    /// Parses the text of a golden file; `fallback_name` names the case when `case` is absent.
    pub fn parse(text: &str, fallback_name: &str) -> Result<Golden, String> {
        let root: Value = serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
        let Value::Object(root) = root else {
            return Err("the top level is not a JSON object".into());
        };
        match root.get("format") {
            Some(Value::String(f)) if f == FORMAT => {}
            Some(other) => return Err(format!("format is {other}, expected \"{FORMAT}\"")),
            None => return Err(format!("missing key \"format\" (expected \"{FORMAT}\")")),
        }
        let kind = match root.get("kind") {
            Some(Value::String(k)) => k.clone(),
            Some(_) => return Err("key \"kind\" is not a string".into()),
            None => return Err("missing key \"kind\"".into()),
        };
        let case = match root.get("case") {
            Some(Value::String(c)) => c.clone(),
            _ => fallback_name.to_string(),
        };
        Ok(Golden {
            case,
            kind,
            params: object(&root, "params")?,
            inputs: object(&root, "inputs")?,
            expected: object(&root, "expected")?,
        })
    }

    fn param(&self, key: &str) -> Result<&Value, String> {
        self.params
            .get(key)
            .ok_or_else(|| format!("missing key \"params.{key}\""))
    }

    /// Whether `params.key` exists.
    pub fn has_param(&self, key: &str) -> bool {
        self.params.contains_key(key)
    }

    /// `params.key` as a non-negative integer.
    pub fn usize(&self, key: &str) -> Result<usize, String> {
        usize_of(self.param(key)?, &format!("params.{key}"))
    }

    /// `params.key` as a number.
    pub fn f64(&self, key: &str) -> Result<f64, String> {
        self.param(key)?
            .as_f64()
            .ok_or_else(|| format!("params.{key} is not a number"))
    }

    /// `params.key` as a boolean.
    pub fn bool(&self, key: &str) -> Result<bool, String> {
        self.param(key)?
            .as_bool()
            .ok_or_else(|| format!("params.{key} is not true or false"))
    }

    /// `params.key` as a string.
    pub fn str(&self, key: &str) -> Result<&str, String> {
        self.param(key)?
            .as_str()
            .ok_or_else(|| format!("params.{key} is not a string"))
    }

    /// `params.key` as an `[h, w]` pair (a single integer means both).
    pub fn pair(&self, key: &str) -> Result<(usize, usize), String> {
        pair_of(self.param(key)?, &format!("params.{key}"))
    }

    /// `params.key` as raw JSON (for nested specifications such as `train_step.layers`).
    pub fn raw(&self, key: &str) -> Result<&Value, String> {
        self.param(key)
    }

    /// Whether `inputs.name` exists.
    pub fn has_input(&self, name: &str) -> bool {
        self.inputs.contains_key(name)
    }

    /// `inputs.name` as a tensor.
    pub fn input(&self, name: &str) -> Result<GoldenTensor, String> {
        tensor(&self.inputs, "inputs", name)
    }

    /// `inputs.name` as a list of class labels (non-negative integers).
    pub fn labels(&self, name: &str) -> Result<Vec<usize>, String> {
        let what = format!("inputs.{name}");
        let t = self
            .inputs
            .get(name)
            .ok_or_else(|| format!("missing key \"{what}\""))?;
        let data = t
            .get("data")
            .and_then(Value::as_array)
            .ok_or_else(|| format!("{what} has no \"data\" list"))?;
        data.iter()
            .enumerate()
            .map(|(i, v)| usize_of(v, &format!("{what}.data[{i}]")))
            .collect()
    }

    /// `expected.name` as a tensor.
    pub fn expected(&self, name: &str) -> Result<GoldenTensor, String> {
        tensor(&self.expected, "expected", name)
    }

    /// The names under `expected`.
    pub fn expected_names(&self) -> Vec<String> {
        self.expected.keys().cloned().collect()
    }
}

fn usize_of(v: &Value, what: &str) -> Result<usize, String> {
    v.as_u64()
        .and_then(|u| usize::try_from(u).ok())
        .ok_or_else(|| format!("{what} is {v}, not a non-negative integer"))
}

/// A pair from `[h, w]` or a single integer.
pub fn pair_of(v: &Value, what: &str) -> Result<(usize, usize), String> {
    match v {
        Value::Array(a) if a.len() == 2 => Ok((
            usize_of(&a[0], &format!("{what}[0]"))?,
            usize_of(&a[1], &format!("{what}[1]"))?,
        )),
        Value::Number(_) => {
            let s = usize_of(v, what)?;
            Ok((s, s))
        }
        _ => Err(format!("{what} is {v}, not an [h, w] pair")),
    }
}

fn tensor(
    section: &Map<String, Value>,
    section_name: &str,
    name: &str,
) -> Result<GoldenTensor, String> {
    let what = format!("{section_name}.{name}");
    let t = section
        .get(name)
        .ok_or_else(|| format!("missing key \"{what}\""))?;
    let shape = t
        .get("shape")
        .and_then(Value::as_array)
        .ok_or_else(|| format!("{what} has no \"shape\" list"))?
        .iter()
        .enumerate()
        .map(|(i, d)| usize_of(d, &format!("{what}.shape[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    let data = t
        .get("data")
        .and_then(Value::as_array)
        .ok_or_else(|| format!("{what} has no \"data\" list"))?
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_f64()
                .ok_or_else(|| format!("{what}.data[{i}] is {v}, not a number"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let numel: usize = shape.iter().product();
    if numel != data.len() {
        return Err(format!(
            "{what} has shape {shape:?} ({numel} values) but {} values",
            data.len()
        ));
    }
    Ok(GoldenTensor { shape, data })
}
