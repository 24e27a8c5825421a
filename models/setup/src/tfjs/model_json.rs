//! The `model.json` of a TF.js graph model, as far as the converter reads it: the graph
//! nodes (TensorFlow `NodeDef`s in protobuf's JSON mapping), the weights manifest and the
//! signature. Attribute values keep protobuf-JSON quirks (64-bit integers as strings,
//! `bytes` as base64), so the accessors here decode them and turn every surprise into a
//! [`TfjsError`] naming the node and attribute.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::TfjsError;

#[derive(Debug, Deserialize)]
pub(crate) struct ModelJson {
    pub format: Option<String>,
    #[serde(rename = "generatedBy")]
    pub generated_by: Option<String>,
    #[serde(rename = "convertedBy")]
    pub converted_by: Option<String>,
    #[serde(rename = "modelTopology")]
    pub model_topology: Topology,
    #[serde(rename = "weightsManifest", default)]
    pub weights_manifest: Vec<ManifestGroup>,
    pub signature: Option<Signature>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Topology {
    #[serde(default)]
    pub node: Vec<NodeDef>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct NodeDef {
    pub name: String,
    pub op: String,
    #[serde(default)]
    pub input: Vec<String>,
    #[serde(default)]
    pub attr: BTreeMap<String, AttrValue>,
}

/// One TensorFlow `AttrValue`; only the fields the converter reads are declared.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct AttrValue {
    pub s: Option<String>,
    pub i: Option<IntLike>,
    pub b: Option<bool>,
    #[serde(rename = "type")]
    pub ty: Option<String>,
    pub list: Option<AttrList>,
    pub shape: Option<ShapeAttr>,
    pub tensor: Option<TensorAttr>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct AttrList {
    #[serde(default)]
    pub s: Vec<String>,
    #[serde(default)]
    pub i: Vec<IntLike>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct TensorAttr {
    pub dtype: Option<String>,
    #[serde(rename = "tensorShape")]
    pub tensor_shape: Option<ShapeAttr>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ShapeAttr {
    #[serde(default)]
    pub dim: Vec<DimAttr>,
    #[serde(rename = "unknownRank", default)]
    pub unknown_rank: bool,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct DimAttr {
    /// Protobuf JSON omits a zero size entirely.
    pub size: Option<IntLike>,
}

/// Protobuf's JSON mapping writes int64 as a string; writers also emit plain numbers.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum IntLike {
    Num(i64),
    Str(String),
}

impl IntLike {
    pub fn get(&self) -> Result<i64, String> {
        match self {
            IntLike::Num(v) => Ok(*v),
            IntLike::Str(s) => s.parse().map_err(|_| format!("{s:?} is not an integer")),
        }
    }
}

impl ShapeAttr {
    /// Dimensions with TF's `-1` (unknown) as `None`.
    pub fn dims(&self) -> Result<Vec<Option<i64>>, String> {
        if self.unknown_rank {
            return Err("the shape has unknown rank".into());
        }
        self.dim
            .iter()
            .map(|d| match &d.size {
                None => Ok(Some(0)),
                Some(v) => match v.get()? {
                    -1 => Ok(None),
                    n if n >= 0 => Ok(Some(n)),
                    n => Err(format!("invalid dimension {n}")),
                },
            })
            .collect()
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct ManifestGroup {
    #[serde(default)]
    pub weights: Vec<WeightSpec>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct WeightSpec {
    pub name: String,
    pub shape: Vec<i64>,
    pub dtype: String,
    pub quantization: Option<Quantization>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Quantization {
    pub dtype: String,
    pub scale: Option<f64>,
    pub min: Option<f64>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Signature {
    #[serde(default)]
    pub outputs: BTreeMap<String, SignatureTensor>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct SignatureTensor {
    pub name: String,
}

/// Typed access to a node's attributes, with errors that name the node.
impl NodeDef {
    pub fn err(&self, msg: impl Into<String>) -> TfjsError {
        TfjsError::Node {
            node: self.name.clone(),
            op: self.op.clone(),
            msg: msg.into(),
        }
    }

    fn attr(&self, key: &str) -> Option<&AttrValue> {
        self.attr.get(key)
    }

    /// A string (`bytes`) attribute, base64-decoded; `None` when absent.
    pub fn attr_str(&self, key: &str) -> Result<Option<String>, TfjsError> {
        match self.attr(key).and_then(|a| a.s.as_deref()) {
            None => Ok(None),
            Some(b64) => decode_b64_str(b64)
                .map(Some)
                .map_err(|e| self.err(format!("attribute {key}: {e}"))),
        }
    }

    /// A list-of-strings attribute, each base64-decoded; empty when absent.
    pub fn attr_str_list(&self, key: &str) -> Result<Vec<String>, TfjsError> {
        let Some(list) = self.attr(key).and_then(|a| a.list.as_ref()) else {
            return Ok(Vec::new());
        };
        list.s
            .iter()
            .map(|b64| decode_b64_str(b64).map_err(|e| self.err(format!("attribute {key}: {e}"))))
            .collect()
    }

    /// A list-of-ints attribute; `None` when absent.
    pub fn attr_ints(&self, key: &str) -> Result<Option<Vec<i64>>, TfjsError> {
        let Some(a) = self.attr(key) else {
            return Ok(None);
        };
        let Some(list) = a.list.as_ref() else {
            return Ok(Some(Vec::new()));
        };
        list.i
            .iter()
            .map(|v| {
                v.get()
                    .map_err(|e| self.err(format!("attribute {key}: {e}")))
            })
            .collect::<Result<_, _>>()
            .map(Some)
    }

    pub fn attr_int(&self, key: &str) -> Result<Option<i64>, TfjsError> {
        match self.attr(key).and_then(|a| a.i.as_ref()) {
            None => Ok(None),
            Some(v) => v
                .get()
                .map(Some)
                .map_err(|e| self.err(format!("attribute {key}: {e}"))),
        }
    }

    pub fn attr_bool(&self, key: &str) -> Option<bool> {
        self.attr(key).and_then(|a| a.b)
    }

    pub fn attr_type(&self, key: &str) -> Option<&str> {
        self.attr(key).and_then(|a| a.ty.as_deref())
    }

    /// A shape attribute (a `Placeholder`'s `shape`); `None` when absent.
    pub fn attr_shape(&self, key: &str) -> Result<Option<Vec<Option<i64>>>, TfjsError> {
        let Some(shape) = self.attr(key).and_then(|a| a.shape.as_ref()) else {
            return Ok(None);
        };
        shape
            .dims()
            .map(Some)
            .map_err(|e| self.err(format!("attribute {key}: {e}")))
    }

    /// The element type declared in a `Const` node's `value` tensor, if any.
    pub fn const_declared_dtype(&self) -> Option<&str> {
        self.attr("value")
            .and_then(|a| a.tensor.as_ref())
            .and_then(|t| t.dtype.as_deref())
    }

    /// The shape declared in a `Const` node's `value` tensor, if any.
    pub fn const_declared_shape(&self) -> Result<Option<Vec<Option<i64>>>, TfjsError> {
        let Some(shape) = self
            .attr("value")
            .and_then(|a| a.tensor.as_ref())
            .and_then(|t| t.tensor_shape.as_ref())
        else {
            return Ok(None);
        };
        shape
            .dims()
            .map(Some)
            .map_err(|e| self.err(format!("value tensor shape: {e}")))
    }
}

/// Standard base64 (with or without padding), as protobuf JSON writes `bytes`.
pub(crate) fn decode_b64(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    let mut seen_pad = false;
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => {
                seen_pad = true;
                continue;
            }
            _ => return Err(format!("invalid base64 character {:?}", c as char)),
        };
        if seen_pad {
            return Err("base64 data after padding".into());
        }
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if bits >= 6 {
        return Err("truncated base64".into());
    }
    Ok(out)
}

fn decode_b64_str(text: &str) -> Result<String, String> {
    String::from_utf8(decode_b64(text)?).map_err(|_| "not UTF-8 after base64 decoding".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes_tf_attribute_strings() {
        assert_eq!(decode_b64("U0FNRQ==").as_deref(), Ok(&b"SAME"[..]));
        assert_eq!(decode_b64("VkFMSUQ=").as_deref(), Ok(&b"VALID"[..]));
        assert_eq!(decode_b64("TkhXQw==").as_deref(), Ok(&b"NHWC"[..]));
        assert_eq!(decode_b64("Qmlhc0FkZA==").as_deref(), Ok(&b"BiasAdd"[..]));
        assert_eq!(decode_b64("UmVsdQ").as_deref(), Ok(&b"Relu"[..]));
        assert_eq!(decode_b64("").as_deref(), Ok(&b""[..]));
        assert!(decode_b64("U0F!").is_err());
        assert!(decode_b64("U").is_err());
        assert!(decode_b64("UQ==UQ").is_err());
    }

    #[test]
    fn int64_accepts_strings_and_numbers() {
        let v: Vec<IntLike> = serde_json::from_str(r#"["3", 4, "-1"]"#).expect("parses");
        let got: Vec<i64> = v.iter().map(|x| x.get().expect("int")).collect();
        assert_eq!(got, vec![3, 4, -1]);
        assert!(IntLike::Str("x".into()).get().is_err());
    }
}
