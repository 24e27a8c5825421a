//! A minimal ONNX writer: the protobuf messages we need, declared by hand with `prost`
//! (so set-up needs no `protoc`), and a small graph builder on top.
//!
//! Only the subset of `onnx.proto3` our converters emit is declared; field numbers follow
//! the official schema. Encoding is deterministic: prost writes fields in declaration
//! order and we never use maps, so the same graph always gives the same bytes, which is
//! what lets the manifest pin the converted files by sha256.

use prost::Message;

/// IR version 8 / opset 17: supported by every ONNX Runtime since 1.14 and plenty for
/// plain CNNs.
pub const IR_VERSION: i64 = 8;
pub const OPSET: i64 = 17;

pub mod data_type {
    pub const FLOAT: i32 = 1;
    pub const INT32: i32 = 6;
    pub const INT64: i32 = 7;
}

#[derive(Clone, PartialEq, Message)]
pub struct ModelProto {
    #[prost(int64, tag = "1")]
    pub ir_version: i64,
    #[prost(string, tag = "2")]
    pub producer_name: String,
    #[prost(string, tag = "3")]
    pub producer_version: String,
    #[prost(string, tag = "6")]
    pub doc_string: String,
    #[prost(message, optional, tag = "7")]
    pub graph: Option<GraphProto>,
    #[prost(message, repeated, tag = "8")]
    pub opset_import: Vec<OperatorSetIdProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct OperatorSetIdProto {
    #[prost(string, tag = "1")]
    pub domain: String,
    #[prost(int64, tag = "2")]
    pub version: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct GraphProto {
    #[prost(message, repeated, tag = "1")]
    pub node: Vec<NodeProto>,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(message, repeated, tag = "5")]
    pub initializer: Vec<TensorProto>,
    #[prost(message, repeated, tag = "11")]
    pub input: Vec<ValueInfoProto>,
    #[prost(message, repeated, tag = "12")]
    pub output: Vec<ValueInfoProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct NodeProto {
    #[prost(string, repeated, tag = "1")]
    pub input: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    pub output: Vec<String>,
    #[prost(string, tag = "3")]
    pub name: String,
    #[prost(string, tag = "4")]
    pub op_type: String,
    #[prost(message, repeated, tag = "5")]
    pub attribute: Vec<AttributeProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct AttributeProto {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(float, tag = "2")]
    pub f: f32,
    #[prost(int64, tag = "3")]
    pub i: i64,
    #[prost(bytes = "vec", tag = "4")]
    pub s: Vec<u8>,
    #[prost(message, optional, tag = "5")]
    pub t: Option<TensorProto>,
    #[prost(float, repeated, tag = "7")]
    pub floats: Vec<f32>,
    #[prost(int64, repeated, tag = "8")]
    pub ints: Vec<i64>,
    #[prost(int32, tag = "20")]
    pub r#type: i32,
}

/// `AttributeProto.AttributeType` values.
pub mod attribute_type {
    pub const FLOAT: i32 = 1;
    pub const INT: i32 = 2;
    pub const STRING: i32 = 3;
    pub const TENSOR: i32 = 4;
    pub const FLOATS: i32 = 6;
    pub const INTS: i32 = 7;
}

#[derive(Clone, PartialEq, Message)]
pub struct TensorProto {
    #[prost(int64, repeated, tag = "1")]
    pub dims: Vec<i64>,
    #[prost(int32, tag = "2")]
    pub data_type: i32,
    #[prost(string, tag = "8")]
    pub name: String,
    #[prost(bytes = "vec", tag = "9")]
    pub raw_data: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ValueInfoProto {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub r#type: Option<TypeProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct TypeProto {
    #[prost(message, optional, tag = "1")]
    pub tensor_type: Option<TypeProtoTensor>,
}

#[derive(Clone, PartialEq, Message)]
pub struct TypeProtoTensor {
    #[prost(int32, tag = "1")]
    pub elem_type: i32,
    #[prost(message, optional, tag = "2")]
    pub shape: Option<TensorShapeProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct TensorShapeProto {
    #[prost(message, repeated, tag = "1")]
    pub dim: Vec<Dimension>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Dimension {
    #[prost(int64, optional, tag = "1")]
    pub dim_value: Option<i64>,
    #[prost(string, optional, tag = "2")]
    pub dim_param: Option<String>,
}

/// One attribute value, for [`GraphBuilder::node`].
#[derive(Debug, Clone)]
pub enum Attr {
    Int(i64),
    Ints(Vec<i64>),
    Float(f32),
    Floats(Vec<f32>),
    Str(String),
}

impl Attr {
    fn into_proto(self, name: &str) -> AttributeProto {
        let mut a = AttributeProto {
            name: name.to_string(),
            ..Default::default()
        };
        match self {
            Attr::Int(v) => {
                a.i = v;
                a.r#type = attribute_type::INT;
            }
            Attr::Ints(v) => {
                a.ints = v;
                a.r#type = attribute_type::INTS;
            }
            Attr::Float(v) => {
                a.f = v;
                a.r#type = attribute_type::FLOAT;
            }
            Attr::Floats(v) => {
                a.floats = v;
                a.r#type = attribute_type::FLOATS;
            }
            Attr::Str(v) => {
                a.s = v.into_bytes();
                a.r#type = attribute_type::STRING;
            }
        }
        a
    }
}

/// A dimension of a graph input or output: fixed, or named (e.g. a batch size).
#[derive(Debug, Clone)]
pub enum Dim {
    Fixed(i64),
    Named(&'static str),
}

/// Builds a single-graph ONNX model, node by node.
///
/// Node and tensor names must be unique; the builder does not check that (ONNX Runtime
/// does, with a clear message, when the model is loaded).
#[derive(Debug, Default)]
pub struct GraphBuilder {
    graph: GraphProto,
    counter: usize,
}

impl GraphBuilder {
    pub fn new(name: &str) -> Self {
        GraphBuilder {
            graph: GraphProto {
                name: name.to_string(),
                ..Default::default()
            },
            counter: 0,
        }
    }

    /// A fresh, unique tensor name with a readable prefix.
    pub fn fresh(&mut self, prefix: &str) -> String {
        self.counter += 1;
        format!("{prefix}_{}", self.counter)
    }

    pub fn input(&mut self, name: &str, elem_type: i32, dims: &[Dim]) {
        self.graph.input.push(value_info(name, elem_type, dims));
    }

    pub fn output(&mut self, name: &str, elem_type: i32, dims: &[Dim]) {
        self.graph.output.push(value_info(name, elem_type, dims));
    }

    /// Adds a float32 constant (weights) and returns its name.
    pub fn initializer_f32(&mut self, name: &str, dims: &[i64], values: &[f32]) -> String {
        let expected: i64 = dims.iter().product();
        assert_eq!(
            expected as usize,
            values.len(),
            "initializer {name}: dims {dims:?} do not match {} values",
            values.len()
        );
        let mut raw = Vec::with_capacity(values.len() * 4);
        for v in values {
            raw.extend_from_slice(&v.to_le_bytes());
        }
        self.graph.initializer.push(TensorProto {
            dims: dims.to_vec(),
            data_type: data_type::FLOAT,
            name: name.to_string(),
            raw_data: raw,
        });
        name.to_string()
    }

    /// Adds an int64 constant (shapes, pads, axes) and returns its name.
    pub fn initializer_i64(&mut self, name: &str, dims: &[i64], values: &[i64]) -> String {
        let expected: i64 = dims.iter().product();
        assert_eq!(
            expected as usize,
            values.len(),
            "initializer {name}: dims {dims:?} do not match {} values",
            values.len()
        );
        let mut raw = Vec::with_capacity(values.len() * 8);
        for v in values {
            raw.extend_from_slice(&v.to_le_bytes());
        }
        self.graph.initializer.push(TensorProto {
            dims: dims.to_vec(),
            data_type: data_type::INT64,
            name: name.to_string(),
            raw_data: raw,
        });
        name.to_string()
    }

    /// Adds a node; `name` is used for the node itself and, if `outputs` is empty, a single
    /// output tensor of the same name is created. Returns the first output's name.
    pub fn node(
        &mut self,
        op_type: &str,
        name: &str,
        inputs: &[&str],
        outputs: &[&str],
        attrs: Vec<(&str, Attr)>,
    ) -> String {
        let outputs: Vec<String> = if outputs.is_empty() {
            vec![name.to_string()]
        } else {
            outputs.iter().map(|s| s.to_string()).collect()
        };
        let first = outputs[0].clone();
        self.graph.node.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs,
            name: name.to_string(),
            op_type: op_type.to_string(),
            attribute: attrs.into_iter().map(|(n, a)| a.into_proto(n)).collect(),
        });
        first
    }

    /// Serialises the model. `doc` lands in the model's doc string (we record the source
    /// archive and converter version there).
    pub fn finish(self, doc: &str) -> Vec<u8> {
        let model = ModelProto {
            ir_version: IR_VERSION,
            producer_name: "cleanplate-model-setup".to_string(),
            producer_version: env!("CARGO_PKG_VERSION").to_string(),
            doc_string: doc.to_string(),
            graph: Some(self.graph),
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: OPSET,
            }],
        };
        model.encode_to_vec()
    }
}

fn value_info(name: &str, elem_type: i32, dims: &[Dim]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| match d {
            Dim::Fixed(v) => Dimension {
                dim_value: Some(*v),
                dim_param: None,
            },
            Dim::Named(n) => Dimension {
                dim_value: None,
                dim_param: Some(n.to_string()),
            },
        })
        .collect();
    ValueInfoProto {
        name: name.to_string(),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor {
                elem_type,
                shape: Some(TensorShapeProto { dim }),
            }),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_is_deterministic_and_decodes_back() {
        let build = || {
            let mut g = GraphBuilder::new("t");
            g.input("x", data_type::FLOAT, &[Dim::Named("n"), Dim::Fixed(4)]);
            let w = g.initializer_f32("w", &[4, 2], &[0.5; 8]);
            g.node("MatMul", "y", &["x", &w], &[], vec![]);
            g.output("y", data_type::FLOAT, &[Dim::Named("n"), Dim::Fixed(2)]);
            g.finish("doc")
        };
        let a = build();
        assert_eq!(a, build());
        let m = ModelProto::decode(a.as_slice()).expect("decodes");
        let graph = m.graph.expect("graph");
        assert_eq!(graph.node[0].op_type, "MatMul");
        assert_eq!(graph.initializer[0].raw_data.len(), 32);
        assert_eq!(m.opset_import[0].version, OPSET);
    }
}
