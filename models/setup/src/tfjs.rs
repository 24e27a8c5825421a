//! TF.js graph models to ONNX, with our own code (no TensorFlow, no Python): the two
//! passive-liveness models of `@vladmandic/human` (antispoof: 128x128 RGB in [0, 1] to a
//! sigmoid "real" score; liveness: 32x32 RGB in [0, 1] to softmax [live, not live]). The
//! `model.json` is parsed (`model_json`), the `.bin` decoded and dequantised against the
//! weights manifest (`weights`), and the graph lowered op by op onto
//! [`crate::onnx::GraphBuilder`] (`lower`). The ONNX graph takes NHWC float32 like TF.js
//! (input `image`, batch dynamic) so callers feed it the same tensor they would feed TF.js;
//! `models/setup/tests/tfjs_equivalence.rs` checks the result against TF.js's own outputs.
//! Conversion is deterministic: the same files always give the same bytes.

mod lower;
mod model_json;
mod weights;

/// The TF ops [`convert`] lowers; any other op in the graph is a [`TfjsError::UnsupportedOp`].
pub const SUPPORTED_OPS: &[&str] = &[
    "Const",
    "Placeholder",
    "Identity",
    "_FusedConv2D",
    "MaxPool",
    "Relu",
    "Sigmoid",
    "Mul",
    "Add",
    "AddV2",
    "Reshape",
    "_FusedMatMul",
    "Softmax",
];

/// Name of the converted graphs' input: NHWC float32 `[N, H, W, 3]`, RGB in [0, 1].
pub const INPUT_NAME: &str = "image";

#[derive(Debug, thiserror::Error)]
pub enum TfjsError {
    #[error("model.json is not valid JSON for a TF.js graph model: {0}")]
    Json(String),
    #[error("model.json: {0}")]
    Format(String),
    #[error("weights: {0}")]
    Weights(String),
    #[error("node {node:?}: op {op} is not supported by the TF.js converter (supported: {})", SUPPORTED_OPS.join(", "))]
    UnsupportedOp { node: String, op: String },
    #[error("node {node:?} ({op}): {msg}")]
    Node {
        node: String,
        op: String,
        msg: String,
    },
    #[error("unknown TF.js model {0:?}: expected \"antispoof\" or \"liveness\"")]
    UnknownModel(String),
}

/// The graph output's name for each model set-up converts.
pub fn output_name(model: &str) -> Result<&'static str, TfjsError> {
    match model {
        // Sigmoid [N, 1]: higher means a real face.
        "antispoof" => Ok("real"),
        // Softmax [N, 2]: index 0 is "live".
        "liveness" => Ok("scores"),
        other => Err(TfjsError::UnknownModel(other.to_string())),
    }
}

/// Converts one of the known models (`"antispoof"` or `"liveness"`): input [`INPUT_NAME`],
/// output [`output_name`]. `weights` is the `.bin` (all shards of the manifest, concatenated
/// in manifest order).
pub fn convert(model_json: &[u8], weights: &[u8], name: &str) -> Result<Vec<u8>, TfjsError> {
    let output = output_name(name)?;
    convert_with_names(model_json, weights, name, INPUT_NAME, output)
}

/// Converts any TF.js graph model made of [`SUPPORTED_OPS`] with one float input and one
/// output, naming the ONNX graph, its input and its output as given.
pub fn convert_with_names(
    model_json: &[u8],
    weights: &[u8],
    graph_name: &str,
    input: &str,
    output: &str,
) -> Result<Vec<u8>, TfjsError> {
    let model: model_json::ModelJson =
        serde_json::from_slice(model_json).map_err(|e| TfjsError::Json(e.to_string()))?;
    if let Some(format) = model.format.as_deref() {
        if format != "graph-model" {
            return Err(TfjsError::Format(format!(
                "format {format:?}: only TF.js graph models are supported"
            )));
        }
    }
    let tensors = weights::decode(&model.weights_manifest, weights)?;
    let iface = lower::Interface {
        graph_name,
        input,
        output,
    };
    let onnx = lower::lower(&model, &tensors, &iface)?;
    tracing::debug!(
        model = graph_name,
        bytes = onnx.len(),
        "converted TF.js graph model"
    );
    Ok(onnx)
}

#[cfg(test)]
mod tests {
    //! Small hand-made graphs: structure of the lowering and the error paths. Numerical
    //! equivalence with TF.js on the real models is in `tests/tfjs_equivalence.rs`.

    use prost::Message;

    use super::*;
    use crate::onnx::ModelProto;

    /// A tiny conv -> pool -> flatten -> dense -> softmax graph in TF.js's JSON form.
    fn tiny(extra_node: Option<&str>) -> (Vec<u8>, Vec<u8>) {
        let b64 = |s: &str| {
            // Minimal encoder for the test's ASCII attribute strings.
            const T: &[u8; 64] =
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
            let b = s.as_bytes();
            let mut out = String::new();
            for chunk in b.chunks(3) {
                let n = chunk
                    .iter()
                    .enumerate()
                    .fold(0u32, |acc, (i, &c)| acc | (u32::from(c) << (16 - 8 * i)));
                for i in 0..4 {
                    if i <= chunk.len() {
                        out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
                    } else {
                        out.push('=');
                    }
                }
            }
            out
        };
        let extra = extra_node.map(|n| format!("{n},")).unwrap_or_default();
        let json = format!(
            r#"{{"format":"graph-model","modelTopology":{{"node":[
              {{"name":"w","op":"Const","attr":{{"dtype":{{"type":"DT_FLOAT"}}}}}},
              {{"name":"b","op":"Const","attr":{{"dtype":{{"type":"DT_FLOAT"}}}}}},
              {{"name":"shape","op":"Const","attr":{{"dtype":{{"type":"DT_INT32"}}}}}},
              {{"name":"d","op":"Const","attr":{{"dtype":{{"type":"DT_FLOAT"}}}}}},
              {{"name":"x","op":"Placeholder","attr":{{"dtype":{{"type":"DT_FLOAT"}},"shape":{{"shape":{{"dim":[{{"size":"-1"}},{{"size":"4"}},{{"size":"4"}},{{"size":"1"}}]}}}}}}}},
              {extra}
              {{"name":"conv","op":"_FusedConv2D","input":["x","w","b"],"attr":{{"padding":{{"s":"{same}"}},"num_args":{{"i":"1"}},"strides":{{"list":{{"i":["1","1","1","1"]}}}},"data_format":{{"s":"{nhwc}"}},"fused_ops":{{"list":{{"s":["{bias}","{relu}"]}}}}}}}},
              {{"name":"pool","op":"MaxPool","input":["conv"],"attr":{{"ksize":{{"list":{{"i":["1","2","2","1"]}}}},"strides":{{"list":{{"i":["1","2","2","1"]}}}},"padding":{{"s":"{valid}"}}}}}},
              {{"name":"flat","op":"Reshape","input":["pool","shape"]}},
              {{"name":"dense","op":"_FusedMatMul","input":["flat","d"],"attr":{{"num_args":{{"i":"0"}},"fused_ops":{{"list":{{}}}}}}}},
              {{"name":"sm","op":"Softmax","input":["dense"]}},
              {{"name":"Identity","op":"Identity","input":["sm"]}}
            ]}},"weightsManifest":[{{"paths":["t.bin"],"weights":[
              {{"name":"w","shape":[3,3,1,2],"dtype":"float32"}},
              {{"name":"b","shape":[2],"dtype":"float32","quantization":{{"dtype":"float16","original_dtype":"float32"}}}},
              {{"name":"shape","shape":[2],"dtype":"int32"}},
              {{"name":"d","shape":[8,2],"dtype":"float32"}}
            ]}}],"signature":{{"outputs":{{"o":{{"name":"Identity:0"}}}}}}}}"#,
            same = b64("SAME"),
            valid = b64("VALID"),
            nhwc = b64("NHWC"),
            bias = b64("BiasAdd"),
            relu = b64("Relu"),
        );
        let mut bin = Vec::new();
        for i in 0..18 {
            bin.extend((i as f32 * 0.1 - 0.5).to_le_bytes());
        }
        bin.extend(0x3c00u16.to_le_bytes());
        bin.extend(0xb800u16.to_le_bytes());
        bin.extend((-1i32).to_le_bytes());
        bin.extend(8i32.to_le_bytes());
        for i in 0..16 {
            bin.extend((i as f32 * 0.05).to_le_bytes());
        }
        (json.into_bytes(), bin)
    }

    fn decode(onnx: &[u8]) -> ModelProto {
        ModelProto::decode(onnx).expect("valid protobuf")
    }

    #[test]
    fn lowers_a_small_graph_with_layout_changes_where_tf_needs_them() {
        let (json, bin) = tiny(None);
        let onnx = convert_with_names(&json, &bin, "tiny", "image", "out").expect("converts");
        let graph = decode(&onnx).graph.expect("graph");
        let ops: Vec<&str> = graph.node.iter().map(|n| n.op_type.as_str()).collect();
        assert_eq!(
            ops,
            [
                "Transpose",
                "Conv",
                "Relu",
                "MaxPool",
                "Transpose",
                "Reshape",
                "Gemm",
                "Softmax",
                "Identity"
            ]
        );
        // SAME 3x3 stride 1: one pixel each side.
        let conv = &graph.node[1];
        let pads = conv
            .attribute
            .iter()
            .find(|a| a.name == "pads")
            .expect("pads");
        assert_eq!(pads.ints, vec![1, 1, 1, 1]);
        // HWIO -> OIHW: output channel 0 takes every second value of the TF filter.
        let w = graph
            .initializer
            .iter()
            .find(|t| t.name == "w/oihw")
            .expect("filter");
        assert_eq!(w.dims, vec![2, 1, 3, 3]);
        let first: Vec<f32> = w
            .raw_data
            .chunks_exact(4)
            .take(3)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(first, vec![-0.5, -0.5 + 0.2, -0.5 + 0.4]);
        let b = graph
            .initializer
            .iter()
            .find(|t| t.name == "b/bias")
            .expect("bias");
        assert_eq!(
            b.raw_data,
            [1.0f32.to_le_bytes(), (-0.5f32).to_le_bytes()].concat()
        );
        assert_eq!(graph.input[0].name, "image");
        assert_eq!(graph.output[0].name, "out");
        let out_dims = graph.output[0]
            .r#type
            .as_ref()
            .and_then(|t| t.tensor_type.as_ref())
            .and_then(|t| t.shape.as_ref())
            .expect("shape");
        assert_eq!(out_dims.dim[0].dim_param.as_deref(), Some("N"));
        assert_eq!(out_dims.dim[1].dim_value, Some(2));
        // Same input, same bytes.
        assert_eq!(
            onnx,
            convert_with_names(&json, &bin, "tiny", "image", "out").expect("converts")
        );
    }

    #[test]
    fn unsupported_ops_are_named() {
        // An unsupported op on the output's path fails; its name is in the message.
        let (json, bin) = tiny(None);
        let text = String::from_utf8(json)
            .expect("utf8")
            .replace(r#""op":"Softmax""#, r#""op":"Tanh""#);
        let e = convert_with_names(text.as_bytes(), &bin, "tiny", "image", "out")
            .expect_err("Tanh is unsupported");
        assert!(
            matches!(&e, TfjsError::UnsupportedOp { op, node } if op == "Tanh" && node == "sm"),
            "{e}"
        );
        // One off the output's path is never lowered, so it does no harm.
        let (json, bin) = tiny(Some(r#"{"name":"dead","op":"Tanh","input":["x"]}"#));
        assert!(convert_with_names(&json, &bin, "tiny", "image", "out").is_ok());
    }

    #[test]
    fn malformed_inputs_are_errors() {
        let (json, bin) = tiny(None);
        assert!(matches!(
            convert_with_names(b"{not json", &bin, "t", "i", "o"),
            Err(TfjsError::Json(_))
        ));
        assert!(matches!(
            convert_with_names(&json[..json.len() / 2], &bin, "t", "i", "o"),
            Err(TfjsError::Json(_))
        ));
        assert!(matches!(
            convert_with_names(&json, &bin[..bin.len() - 1], "t", "i", "o"),
            Err(TfjsError::Weights(_))
        ));
        assert!(matches!(
            convert_with_names(&json, &[], "t", "i", "o"),
            Err(TfjsError::Weights(_))
        ));
        let text = String::from_utf8(json.clone()).expect("utf8");
        let cyclic = text.replace(r#""input":["conv"]"#, r#""input":["flat"]"#);
        let e = convert_with_names(cyclic.as_bytes(), &bin, "t", "i", "o").expect_err("cycle");
        assert!(e.to_string().contains("cycle"), "{e}");
        let dangling = text.replace(r#""input":["conv"]"#, r#""input":["nowhere"]"#);
        assert!(convert_with_names(dangling.as_bytes(), &bin, "t", "i", "o").is_err());
        let layers = text.replace("graph-model", "layers-model");
        assert!(matches!(
            convert_with_names(layers.as_bytes(), &bin, "t", "i", "o"),
            Err(TfjsError::Format(_))
        ));
        // A filter whose input channels do not match the input.
        let wrong = text.replace(r#"{"size":"1"}]"#, r#"{"size":"3"}]"#);
        assert!(matches!(
            convert_with_names(wrong.as_bytes(), &bin, "t", "i", "o"),
            Err(TfjsError::Node { .. })
        ));
        assert!(matches!(
            convert(&json, &bin, "blazeface"),
            Err(TfjsError::UnknownModel(_))
        ));
    }
}
