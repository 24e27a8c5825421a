//! Lowering a TF.js graph to ONNX nodes. TensorFlow computes in NHWC, ONNX's Conv and
//! MaxPool in NCHW, so each activation carries its current layout and the lowering inserts
//! a Transpose only where the other layout is needed (into the first convolution, and back
//! before a Reshape: TF's flatten order is H, W, C, and a dense layer's weights depend on
//! it). Shapes are tracked in TF's logical order so SAME padding can be computed exactly as
//! TF does (the odd pixel goes at the end) and so malformed graphs fail here with a clear
//! message instead of in ONNX Runtime.
//!
//! Only the ops the liveness models use (and their obvious siblings) are lowered; anything
//! else is an error naming the node, never a silent approximation.

use std::collections::{BTreeMap, BTreeSet};

use super::model_json::{ModelJson, NodeDef};
use super::weights::{Data, Tensor};
use super::TfjsError;
use crate::onnx::{data_type, Attr, Dim, GraphBuilder};

/// The converted graph's interface names.
pub(crate) struct Interface<'a> {
    pub graph_name: &'a str,
    pub input: &'a str,
    pub output: &'a str,
}

/// How an activation is laid out in the ONNX graph. Its logical (TF) shape is NHWC
/// either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Layout {
    /// As TensorFlow has it (NHWC for rank 4).
    Tf,
    /// A rank-4 tensor stored as NCHW.
    Nchw,
}

#[derive(Debug, Clone)]
struct Act {
    onnx: String,
    layout: Layout,
    /// TF order; `None` is an unknown (batch) dimension.
    shape: Vec<Option<i64>>,
}

#[derive(Debug, Clone)]
enum Value {
    /// A weight, materialised in the ONNX graph only when a consumer says in which form.
    Const(String),
    Act(Act),
}

/// TF's `explicit_paddings` for (height, width): (begin, end) each.
type ExplicitPads = Option<[(i64, i64); 2]>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Activation {
    None,
    Relu,
    Relu6,
}

struct Lower<'a> {
    g: GraphBuilder,
    weights: &'a BTreeMap<String, Tensor>,
    values: BTreeMap<String, Value>,
    /// Layout conversions already emitted: (tensor, target layout) -> converted tensor.
    converted: BTreeMap<(String, Layout), String>,
    /// Constants already materialised: (weight, form) -> initializer.
    consts: BTreeMap<(String, &'static str), String>,
    used: BTreeSet<String>,
    iface: &'a Interface<'a>,
    has_input: bool,
}

pub(crate) fn lower(
    model: &ModelJson,
    weights: &BTreeMap<String, Tensor>,
    iface: &Interface<'_>,
) -> Result<Vec<u8>, TfjsError> {
    let mut nodes: BTreeMap<&str, &NodeDef> = BTreeMap::new();
    for n in &model.model_topology.node {
        if nodes.insert(n.name.as_str(), n).is_some() {
            return Err(TfjsError::Format(format!(
                "two nodes are named {:?}",
                n.name
            )));
        }
    }
    let output = output_node(model, &nodes)?;
    let order = topological_order(&nodes, output)?;
    tracing::debug!(
        graph = iface.graph_name,
        nodes = order.len(),
        output,
        "lowering TF.js graph"
    );

    let mut l = Lower {
        g: GraphBuilder::new(iface.graph_name),
        weights,
        values: BTreeMap::new(),
        converted: BTreeMap::new(),
        consts: BTreeMap::new(),
        used: [iface.input.to_string(), iface.output.to_string()]
            .into_iter()
            .collect(),
        iface,
        has_input: false,
    };
    for node in order {
        l.node(node)?;
    }
    if !l.has_input {
        return Err(TfjsError::Format(format!(
            "the output {output:?} does not depend on any Placeholder input"
        )));
    }
    let out = match l.values.get(output) {
        Some(Value::Act(a)) => a.clone(),
        _ => {
            return Err(TfjsError::Format(format!(
                "the output {output:?} is a constant"
            )))
        }
    };
    let last = l.in_layout(&out, Layout::Tf)?;
    l.g.node("Identity", iface.output, &[&last], &[], vec![]);
    l.g.output(iface.output, data_type::FLOAT, &dims(&out.shape));
    let doc = format!(
        "{}: TF.js graph model (generatedBy {}, convertedBy {}) converted to ONNX by cleanplate model-setup",
        iface.graph_name,
        model.generated_by.as_deref().unwrap_or("unknown"),
        model.converted_by.as_deref().unwrap_or("unknown"),
    );
    Ok(l.g.finish(&doc))
}

fn dims(shape: &[Option<i64>]) -> Vec<Dim> {
    shape
        .iter()
        .map(|d| d.map(Dim::Fixed).unwrap_or(Dim::Named("N")))
        .collect()
}

/// `name`, `name:0` -> Some(name); `^name` (a control dependency) -> None.
fn parse_input<'n>(node: &NodeDef, input: &'n str) -> Result<Option<&'n str>, TfjsError> {
    if input.starts_with('^') {
        return Ok(None);
    }
    match input.rsplit_once(':') {
        None => Ok(Some(input)),
        Some((name, "0")) => Ok(Some(name)),
        Some(_) => Err(node.err(format!(
            "input {input:?}: only the first output of a node is supported"
        ))),
    }
}

fn data_inputs(node: &NodeDef) -> Result<Vec<&str>, TfjsError> {
    let mut out = Vec::new();
    for i in &node.input {
        if let Some(name) = parse_input(node, i)? {
            out.push(name);
        }
    }
    Ok(out)
}

/// The one node whose output the model returns: the signature's, or else the only node
/// nothing consumes.
fn output_node<'n>(
    model: &'n ModelJson,
    nodes: &BTreeMap<&'n str, &'n NodeDef>,
) -> Result<&'n str, TfjsError> {
    if let Some(sig) = model.signature.as_ref().filter(|s| !s.outputs.is_empty()) {
        if sig.outputs.len() != 1 {
            return Err(TfjsError::Format(format!(
                "the signature lists {} outputs; exactly one is supported",
                sig.outputs.len()
            )));
        }
        let name = sig
            .outputs
            .values()
            .next()
            .map(|t| t.name.as_str())
            .unwrap_or_default();
        let name = name.strip_suffix(":0").unwrap_or(name);
        if !nodes.contains_key(name) {
            return Err(TfjsError::Format(format!(
                "the signature's output {name:?} is not a node of the graph"
            )));
        }
        return Ok(name);
    }
    let mut consumed = BTreeSet::new();
    for n in nodes.values() {
        for i in data_inputs(n)? {
            consumed.insert(i);
        }
    }
    let terminal: Vec<&str> = model
        .model_topology
        .node
        .iter()
        .filter(|n| n.op != "Const" && n.op != "Placeholder" && !consumed.contains(n.name.as_str()))
        .map(|n| n.name.as_str())
        .collect();
    match terminal.as_slice() {
        [one] => Ok(one),
        _ => Err(TfjsError::Format(format!(
            "no signature and {} candidate output nodes; exactly one is supported",
            terminal.len()
        ))),
    }
}

/// The nodes the output depends on, each after its inputs. Iterative, so a deep or cyclic
/// graph from a hostile file cannot overflow the stack.
fn topological_order<'n>(
    nodes: &BTreeMap<&'n str, &'n NodeDef>,
    output: &'n str,
) -> Result<Vec<&'n NodeDef>, TfjsError> {
    #[derive(PartialEq)]
    enum State {
        Visiting,
        Done,
    }
    let mut state: BTreeMap<&str, State> = BTreeMap::new();
    let mut order = Vec::new();
    let mut stack: Vec<(&str, usize)> = vec![(output, 0)];
    while let Some((name, next)) = stack.pop() {
        let node = *nodes.get(name).ok_or_else(|| {
            TfjsError::Format(format!("input {name:?} is not a node of the graph"))
        })?;
        if next == 0 {
            match state.get(name) {
                Some(State::Done) => continue,
                Some(State::Visiting) => {
                    return Err(TfjsError::Format(format!(
                        "the graph has a cycle through {name:?}"
                    )))
                }
                None => {
                    state.insert(name, State::Visiting);
                }
            }
        }
        let inputs = data_inputs(node)?;
        if let Some(&child) = inputs.get(next) {
            stack.push((name, next + 1));
            match state.get(child) {
                Some(State::Done) => {}
                Some(State::Visiting) => {
                    return Err(TfjsError::Format(format!(
                        "the graph has a cycle through {child:?}"
                    )))
                }
                None => stack.push((child, 0)),
            }
        } else {
            state.insert(name, State::Done);
            order.push(node);
        }
    }
    Ok(order)
}

/// TF's output size and (begin, end) padding along one spatial axis.
fn window(
    node: &NodeDef,
    padding: &str,
    explicit: Option<(i64, i64)>,
    size: i64,
    k: i64,
    stride: i64,
    dil: i64,
) -> Result<(i64, i64, i64), TfjsError> {
    // Bounds keep the arithmetic below far from overflow whatever the file says.
    const LIMIT: i64 = 1 << 24;
    let ok = |v: i64| (1..=LIMIT).contains(&v);
    if !(ok(size) && ok(k) && ok(stride) && ok(dil)) {
        return Err(node.err(format!(
            "invalid window: input {size}, kernel {k}, stride {stride}, dilation {dil}"
        )));
    }
    if let Some((b, e)) = explicit {
        if !((0..=LIMIT).contains(&b) && (0..=LIMIT).contains(&e)) {
            return Err(node.err(format!("invalid explicit padding ({b}, {e})")));
        }
    }
    let k_eff = (k - 1) * dil + 1;
    let (begin, end) = match padding {
        "VALID" => (0, 0),
        "SAME" => {
            // TF: out = ceil(in / stride); the total padding is split with the extra pixel at the end.
            let out = (size + stride - 1) / stride;
            let total = ((out - 1) * stride + k_eff - size).max(0);
            (total / 2, total - total / 2)
        }
        "EXPLICIT" => {
            explicit.ok_or_else(|| node.err("padding EXPLICIT without explicit_paddings"))?
        }
        other => return Err(node.err(format!("unsupported padding {other:?}"))),
    };
    let span = size + begin + end - k_eff;
    if span < 0 {
        return Err(node.err(format!(
            "window {k_eff} larger than the padded input {}",
            size + begin + end
        )));
    }
    Ok((span / stride + 1, begin, end))
}

impl<'a> Lower<'a> {
    fn unique(&mut self, base: &str) -> String {
        let mut name = base.to_string();
        let mut n = 1;
        while self.used.contains(&name) {
            n += 1;
            name = format!("{base}_{n}");
        }
        self.used.insert(name.clone());
        name
    }

    fn act(&self, node: &NodeDef, name: &str) -> Result<Act, TfjsError> {
        match self.values.get(name) {
            Some(Value::Act(a)) => Ok(a.clone()),
            Some(Value::Const(_)) => Err(node.err(format!(
                "input {name:?} is a constant where an activation is expected"
            ))),
            None => Err(node.err(format!("input {name:?} has no value"))),
        }
    }

    fn konst(&self, node: &NodeDef, name: &str) -> Result<&'a Tensor, TfjsError> {
        match self.values.get(name) {
            Some(Value::Const(w)) => self
                .weights
                .get(w)
                .ok_or_else(|| node.err(format!("constant {w:?} has no weights"))),
            _ => Err(node.err(format!("input {name:?} must be a constant (weights)"))),
        }
    }

    fn konst_f32(&self, node: &NodeDef, name: &str) -> Result<(&'a [usize], &'a [f32]), TfjsError> {
        let t = self.konst(node, name)?;
        match &t.data {
            Data::F32(v) => Ok((&t.shape, v)),
            Data::I32(_) => Err(node.err(format!("constant {name:?} must be float32"))),
        }
    }

    fn set(&mut self, node: &NodeDef, act: Act) {
        self.values.insert(node.name.clone(), Value::Act(act));
    }

    fn in_layout(&mut self, a: &Act, layout: Layout) -> Result<String, TfjsError> {
        if a.layout == layout {
            return Ok(a.onnx.clone());
        }
        if a.shape.len() != 4 {
            return Err(TfjsError::Format(format!(
                "tensor {:?} of rank {} cannot change layout",
                a.onnx,
                a.shape.len()
            )));
        }
        let key = (a.onnx.clone(), layout);
        if let Some(name) = self.converted.get(&key) {
            return Ok(name.clone());
        }
        let (suffix, perm) = match layout {
            Layout::Nchw => ("nchw", vec![0, 3, 1, 2]),
            Layout::Tf => ("nhwc", vec![0, 2, 3, 1]),
        };
        let name = self.unique(&format!("{}/{suffix}", a.onnx));
        self.g.node(
            "Transpose",
            &name,
            &[&a.onnx],
            &[],
            vec![("perm", Attr::Ints(perm))],
        );
        self.converted.insert(key, name.clone());
        Ok(name)
    }

    fn initializer(
        &mut self,
        weight: &str,
        form: &'static str,
        dims: &[i64],
        values: &[f32],
    ) -> String {
        if let Some(name) = self.consts.get(&(weight.to_string(), form)) {
            return name.clone();
        }
        let name = self.unique(&format!("{weight}/{form}"));
        self.g.initializer_f32(&name, dims, values);
        self.consts.insert((weight.to_string(), form), name.clone());
        name
    }

    /// Emits `op` and the fused activation after it; the last node carries the TF node's
    /// name, so the ONNX graph reads like the TF one.
    fn emit_fused(
        &mut self,
        node: &NodeDef,
        op: &str,
        inputs: &[String],
        attrs: Vec<(&str, Attr)>,
        act: Activation,
    ) -> String {
        let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        let main = match act {
            Activation::None => self.unique(&node.name),
            _ => self.unique(&format!("{}/{}", node.name, op.to_lowercase())),
        };
        self.g.node(op, &main, &refs, &[], attrs);
        match act {
            Activation::None => main,
            Activation::Relu => {
                let out = self.unique(&node.name);
                self.g.node("Relu", &out, &[&main], &[], vec![])
            }
            Activation::Relu6 => {
                let lo = self.initializer("relu6", "min", &[], &[0.0]);
                let hi = self.initializer("relu6", "max", &[], &[6.0]);
                let out = self.unique(&node.name);
                self.g.node("Clip", &out, &[&main, &lo, &hi], &[], vec![])
            }
        }
    }

    fn check_float(node: &NodeDef) -> Result<(), TfjsError> {
        match node.attr_type("T") {
            None | Some("DT_FLOAT") => Ok(()),
            Some(t) => Err(node.err(format!("element type {t} is not supported (only DT_FLOAT)"))),
        }
    }

    fn node(&mut self, node: &NodeDef) -> Result<(), TfjsError> {
        match node.op.as_str() {
            "Const" => self.constant(node),
            "Placeholder" => self.placeholder(node),
            "Identity" => {
                let inputs = data_inputs(node)?;
                let [x] = inputs.as_slice() else {
                    return Err(node.err("expects one input"));
                };
                let v = self
                    .values
                    .get(*x)
                    .cloned()
                    .ok_or_else(|| node.err(format!("input {x:?} has no value")))?;
                self.values.insert(node.name.clone(), v);
                Ok(())
            }
            "_FusedConv2D" => self.conv(node),
            "MaxPool" => self.max_pool(node),
            "Relu" | "Sigmoid" => self.unary(node),
            "Mul" | "Add" | "AddV2" => self.binary(node),
            "Reshape" => self.reshape(node),
            "_FusedMatMul" => self.matmul(node),
            "Softmax" => self.softmax(node),
            other => Err(TfjsError::UnsupportedOp {
                node: node.name.clone(),
                op: other.to_string(),
            }),
        }
    }

    fn constant(&mut self, node: &NodeDef) -> Result<(), TfjsError> {
        let t = self.weights.get(&node.name).ok_or_else(|| {
            node.err(
                "constant not found in the weights manifest (inline constants are not supported)",
            )
        })?;
        let declared = node
            .const_declared_dtype()
            .or_else(|| node.attr_type("dtype"));
        let dtype_ok = matches!(
            (declared, &t.data),
            (None, _) | (Some("DT_FLOAT"), Data::F32(_)) | (Some("DT_INT32"), Data::I32(_))
        );
        if !dtype_ok {
            return Err(node.err(format!(
                "declared type {declared:?} differs from the manifest's"
            )));
        }
        if let Some(declared) = node.const_declared_shape()? {
            let ok = declared.len() == t.shape.len()
                && declared
                    .iter()
                    .zip(&t.shape)
                    .all(|(d, &s)| d.map(|d| d as usize == s).unwrap_or(false));
            if !ok {
                return Err(node.err(format!(
                    "declared shape {declared:?} differs from the manifest's {:?}",
                    t.shape
                )));
            }
        }
        self.values
            .insert(node.name.clone(), Value::Const(node.name.clone()));
        Ok(())
    }

    fn placeholder(&mut self, node: &NodeDef) -> Result<(), TfjsError> {
        if self.has_input {
            return Err(node.err("a second Placeholder: only single-input graphs are supported"));
        }
        match node.attr_type("dtype") {
            None | Some("DT_FLOAT") => {}
            Some(t) => {
                return Err(node.err(format!("input type {t} is not supported (only DT_FLOAT)")))
            }
        }
        let shape = node
            .attr_shape("shape")?
            .ok_or_else(|| node.err("the input has no shape"))?;
        if shape.len() != 4 || shape[1..].iter().any(|d| d.is_none()) {
            return Err(node.err(format!(
                "input shape {shape:?}: expected [batch, height, width, channels] with known sizes"
            )));
        }
        // The batch stays dynamic in ONNX even where TF fixed it: more general, same values.
        let mut shape = shape;
        shape[0] = None;
        self.g
            .input(self.iface.input, data_type::FLOAT, &dims(&shape));
        self.has_input = true;
        let act = Act {
            onnx: self.iface.input.to_string(),
            layout: Layout::Tf,
            shape,
        };
        self.set(node, act);
        Ok(())
    }

    /// `fused_ops` + `num_args` of _FusedConv2D / _FusedMatMul: (has bias, activation).
    fn fused(node: &NodeDef, n_args: usize) -> Result<(bool, Activation), TfjsError> {
        let ops = node.attr_str_list("fused_ops")?;
        let num_args = node.attr_int("num_args")?.unwrap_or(0);
        if usize::try_from(num_args).ok() != Some(n_args) {
            return Err(node.err(format!("num_args {num_args} but {n_args} extra inputs")));
        }
        let ops: Vec<&str> = ops.iter().map(String::as_str).collect();
        let (bias, act) = match ops.as_slice() {
            [] => (false, Activation::None),
            ["BiasAdd"] => (true, Activation::None),
            ["BiasAdd", "Relu"] => (true, Activation::Relu),
            ["BiasAdd", "Relu6"] => (true, Activation::Relu6),
            other => {
                return Err(node.err(format!(
                "fused_ops {other:?} not supported (BiasAdd optionally followed by Relu or Relu6)"
            )))
            }
        };
        if n_args != usize::from(bias) {
            return Err(node.err(format!("fused_ops {ops:?} with {n_args} extra inputs")));
        }
        Ok((bias, act))
    }

    /// `[1, a, b, 1]`-style attributes (NHWC) -> `[a, b]`.
    fn spatial(node: &NodeDef, key: &str) -> Result<[i64; 2], TfjsError> {
        match node.attr_ints(key)?.as_deref() {
            None | Some([]) => Ok([1, 1]),
            Some([1, a, b, 1]) => Ok([*a, *b]),
            Some(other) => Err(node.err(format!("{key} {other:?}: expected [1, h, w, 1]"))),
        }
    }

    fn check_nhwc(node: &NodeDef) -> Result<(), TfjsError> {
        match node.attr_str("data_format")?.as_deref() {
            None | Some("NHWC") => Ok(()),
            Some(other) => Err(node.err(format!("data_format {other} not supported (only NHWC)"))),
        }
    }

    /// The padding mode and, for EXPLICIT, (begin, end) per spatial axis.
    fn padding(node: &NodeDef) -> Result<(String, ExplicitPads), TfjsError> {
        let padding = node
            .attr_str("padding")?
            .ok_or_else(|| node.err("no padding attribute"))?;
        let explicit = match node.attr_ints("explicit_paddings")?.as_deref() {
            None | Some([]) => None,
            Some([0, 0, t, b, l, r, 0, 0]) => Some([(*t, *b), (*l, *r)]),
            Some(other) => {
                return Err(node.err(format!(
                    "explicit_paddings {other:?}: expected NHWC with no batch/channel padding"
                )))
            }
        };
        Ok((padding, explicit))
    }

    /// Spatial output size and ONNX `pads` ([top, left, bottom, right]).
    fn geometry(
        node: &NodeDef,
        x: &Act,
        k: [i64; 2],
        strides: [i64; 2],
        dil: [i64; 2],
    ) -> Result<([i64; 2], Vec<i64>), TfjsError> {
        let (padding, explicit) = Self::padding(node)?;
        let mut out = [0; 2];
        let mut pads = vec![0; 4];
        for ax in 0..2 {
            let size = x.shape[1 + ax].ok_or_else(|| node.err("unknown spatial size"))?;
            let (o, b, e) = window(
                node,
                &padding,
                explicit.map(|p| p[ax]),
                size,
                k[ax],
                strides[ax],
                dil[ax],
            )?;
            out[ax] = o;
            pads[ax] = b;
            pads[2 + ax] = e;
        }
        Ok((out, pads))
    }

    fn rank4(node: &NodeDef, x: &Act) -> Result<(), TfjsError> {
        if x.shape.len() != 4 {
            return Err(node.err(format!(
                "expects a rank-4 NHWC input, got shape {:?}",
                x.shape
            )));
        }
        Ok(())
    }

    fn conv(&mut self, node: &NodeDef) -> Result<(), TfjsError> {
        Self::check_float(node)?;
        Self::check_nhwc(node)?;
        let inputs = data_inputs(node)?;
        if inputs.len() < 2 {
            return Err(node.err("expects an input and a filter"));
        }
        let (has_bias, act) = Self::fused(node, inputs.len() - 2)?;
        let x = self.act(node, inputs[0])?;
        Self::rank4(node, &x)?;
        let (wshape, w) = self.konst_f32(node, inputs[1])?;
        let &[kh, kw, cin, cout] = wshape else {
            return Err(node.err(format!("filter shape {wshape:?}: expected [h, w, in, out]")));
        };
        if x.shape[3] != Some(cin as i64) {
            return Err(node.err(format!(
                "filter expects {cin} input channels, the input has {:?}",
                x.shape[3]
            )));
        }
        let strides = Self::spatial(node, "strides")?;
        let dil = Self::spatial(node, "dilations")?;
        let ([oh, ow], pads) = Self::geometry(node, &x, [kh as i64, kw as i64], strides, dil)?;

        // HWIO (TF) -> OIHW (ONNX).
        let mut oihw = vec![0f32; w.len()];
        for h in 0..kh {
            for ww in 0..kw {
                for i in 0..cin {
                    for o in 0..cout {
                        oihw[((o * cin + i) * kh + h) * kw + ww] =
                            w[((h * kw + ww) * cin + i) * cout + o];
                    }
                }
            }
        }
        let dims = [cout as i64, cin as i64, kh as i64, kw as i64];
        let wname = self.initializer(inputs[1], "oihw", &dims, &oihw);
        let mut conv_inputs = vec![self.in_layout(&x, Layout::Nchw)?, wname];
        if has_bias {
            let (bshape, b) = self.konst_f32(node, inputs[2])?;
            if bshape != [cout] {
                return Err(node.err(format!("bias shape {bshape:?}, expected [{cout}]")));
            }
            conv_inputs.push(self.initializer(inputs[2], "bias", &[cout as i64], b));
        }
        let attrs = vec![
            ("kernel_shape", Attr::Ints(vec![kh as i64, kw as i64])),
            ("strides", Attr::Ints(strides.to_vec())),
            ("dilations", Attr::Ints(dil.to_vec())),
            ("pads", Attr::Ints(pads)),
        ];
        let result = self.emit_fused(node, "Conv", &conv_inputs, attrs, act);
        self.set(
            node,
            Act {
                onnx: result,
                layout: Layout::Nchw,
                shape: vec![x.shape[0], Some(oh), Some(ow), Some(cout as i64)],
            },
        );
        Ok(())
    }

    fn max_pool(&mut self, node: &NodeDef) -> Result<(), TfjsError> {
        Self::check_float(node)?;
        Self::check_nhwc(node)?;
        let inputs = data_inputs(node)?;
        let [input] = inputs.as_slice() else {
            return Err(node.err("expects one input"));
        };
        let x = self.act(node, input)?;
        Self::rank4(node, &x)?;
        let k = Self::spatial(node, "ksize")?;
        let strides = Self::spatial(node, "strides")?;
        let ([oh, ow], pads) = Self::geometry(node, &x, k, strides, [1, 1])?;
        let xin = self.in_layout(&x, Layout::Nchw)?;
        let out = self.unique(&node.name);
        // ONNX MaxPool ignores padded cells like TF's SAME does (they never win the max).
        self.g.node(
            "MaxPool",
            &out,
            &[&xin],
            &[],
            vec![
                ("kernel_shape", Attr::Ints(k.to_vec())),
                ("strides", Attr::Ints(strides.to_vec())),
                ("pads", Attr::Ints(pads)),
            ],
        );
        self.set(
            node,
            Act {
                onnx: out,
                layout: Layout::Nchw,
                shape: vec![x.shape[0], Some(oh), Some(ow), x.shape[3]],
            },
        );
        Ok(())
    }

    fn unary(&mut self, node: &NodeDef) -> Result<(), TfjsError> {
        Self::check_float(node)?;
        let inputs = data_inputs(node)?;
        let [input] = inputs.as_slice() else {
            return Err(node.err("expects one input"));
        };
        let x = self.act(node, input)?;
        let out = self.unique(&node.name);
        self.g.node(&node.op, &out, &[&x.onnx], &[], vec![]);
        self.set(node, Act { onnx: out, ..x });
        Ok(())
    }

    fn binary(&mut self, node: &NodeDef) -> Result<(), TfjsError> {
        Self::check_float(node)?;
        let inputs = data_inputs(node)?;
        let [a, b] = inputs.as_slice() else {
            return Err(node.err("expects two inputs"));
        };
        let op = if node.op == "Mul" { "Mul" } else { "Add" };
        let (va, vb) = (self.values.get(*a).cloned(), self.values.get(*b).cloned());
        let (names, result) = match (va, vb) {
            (Some(Value::Act(x)), Some(Value::Act(y))) => {
                if x.shape != y.shape {
                    return Err(node.err(format!(
                        "operand shapes {:?} and {:?}: broadcasting two activations is not supported",
                        x.shape, y.shape
                    )));
                }
                let layout = if x.layout == y.layout {
                    x.layout
                } else {
                    Layout::Nchw
                };
                let (nx, ny) = (self.in_layout(&x, layout)?, self.in_layout(&y, layout)?);
                ([nx, ny], Act { layout, ..x })
            }
            (Some(Value::Act(x)), Some(Value::Const(_))) => {
                let c = self.broadcast_const(node, b, &x)?;
                ([x.onnx.clone(), c], x)
            }
            (Some(Value::Const(_)), Some(Value::Act(y))) => {
                let c = self.broadcast_const(node, a, &y)?;
                ([c, y.onnx.clone()], y)
            }
            (Some(_), Some(_)) => {
                return Err(
                    node.err("both operands are constants (constant folding is not supported)")
                )
            }
            _ => return Err(node.err("an input has no value")),
        };
        let out = self.unique(&node.name);
        self.g.node(op, &out, &[&names[0], &names[1]], &[], vec![]);
        self.set(
            node,
            Act {
                onnx: out,
                ..result
            },
        );
        Ok(())
    }

    /// A constant operand of an element-wise op, laid out to broadcast against `x` in
    /// `x`'s layout exactly as TF broadcasts it against the NHWC tensor. Only constants that
    /// do not enlarge `x` are supported.
    fn broadcast_const(
        &mut self,
        node: &NodeDef,
        name: &str,
        x: &Act,
    ) -> Result<String, TfjsError> {
        let (cshape, data) = self.konst_f32(node, name)?;
        let rank = x.shape.len();
        if cshape.len() > rank {
            return Err(node.err(format!(
                "constant {name:?} of shape {cshape:?} has a higher rank than the activation {:?}",
                x.shape
            )));
        }
        let mut padded = vec![1usize; rank - cshape.len()];
        padded.extend_from_slice(cshape);
        for (c, d) in padded.iter().zip(&x.shape) {
            if *c != 1 && Some(*c as i64) != *d {
                return Err(node.err(format!(
                    "constant {name:?} of shape {cshape:?} does not broadcast onto {:?}",
                    x.shape
                )));
            }
        }
        let (dims, values, form) = if x.layout == Layout::Nchw {
            let [n, h, w, c] = [padded[0], padded[1], padded[2], padded[3]];
            let mut nchw = vec![0f32; data.len()];
            for in_ in 0..n {
                for ih in 0..h {
                    for iw in 0..w {
                        for ic in 0..c {
                            nchw[((in_ * c + ic) * h + ih) * w + iw] =
                                data[((in_ * h + ih) * w + iw) * c + ic];
                        }
                    }
                }
            }
            (vec![n as i64, c as i64, h as i64, w as i64], nchw, "nchw")
        } else {
            (
                padded.iter().map(|&d| d as i64).collect(),
                data.to_vec(),
                "tf",
            )
        };
        Ok(self.initializer(name, form, &dims, &values))
    }

    fn reshape(&mut self, node: &NodeDef) -> Result<(), TfjsError> {
        Self::check_float(node)?;
        let inputs = data_inputs(node)?;
        let [input, shape] = inputs.as_slice() else {
            return Err(node.err("expects a tensor and a shape"));
        };
        let x = self.act(node, input)?;
        let target = match &self.konst(node, shape)?.data {
            Data::I32(v) => v.iter().map(|&d| i64::from(d)).collect::<Vec<_>>(),
            Data::F32(_) => return Err(node.err("the shape must be int32")),
        };
        let known: Option<i64> = x.shape[1..]
            .iter()
            .try_fold(1i64, |acc, d| d.and_then(|d| acc.checked_mul(d)));
        let rest: Option<i64> = target.get(1..).and_then(|r| {
            r.iter().try_fold(
                1i64,
                |acc, &d| if d > 0 { acc.checked_mul(d) } else { None },
            )
        });
        // TF's flatten keeps the batch (-1) and fixes the rest: the only kind Keras emits here.
        if target.first() != Some(&-1) || known.is_none() || known != rest {
            return Err(node.err(format!(
                "reshape of {:?} to {target:?}: only reshapes keeping the batch dimension (-1 first) are supported",
                x.shape
            )));
        }
        // TF flattens in NHWC order, so go back to TF's layout first.
        let xin = self.in_layout(&x, Layout::Tf)?;
        let sname = self.unique(&format!("{}/shape", node.name));
        self.g
            .initializer_i64(&sname, &[target.len() as i64], &target);
        let out = self.unique(&node.name);
        self.g.node("Reshape", &out, &[&xin, &sname], &[], vec![]);
        let mut shape = vec![x.shape[0]];
        shape.extend(target[1..].iter().map(|&d| Some(d)));
        self.set(
            node,
            Act {
                onnx: out,
                layout: Layout::Tf,
                shape,
            },
        );
        Ok(())
    }

    fn matmul(&mut self, node: &NodeDef) -> Result<(), TfjsError> {
        Self::check_float(node)?;
        let inputs = data_inputs(node)?;
        if inputs.len() < 2 {
            return Err(node.err("expects two matrices"));
        }
        let (has_bias, act) = Self::fused(node, inputs.len() - 2)?;
        if node.attr_bool("transpose_a") == Some(true) {
            return Err(node.err("transpose_a is not supported"));
        }
        let transpose_b = node.attr_bool("transpose_b") == Some(true);
        let x = self.act(node, inputs[0])?;
        if x.shape.len() != 2 {
            return Err(node.err(format!("expects a rank-2 input, got {:?}", x.shape)));
        }
        let (wshape, w) = self.konst_f32(node, inputs[1])?;
        let &[r, c] = wshape else {
            return Err(node.err(format!("weight shape {wshape:?}: expected rank 2")));
        };
        let (k, m) = if transpose_b { (c, r) } else { (r, c) };
        if x.shape[1] != Some(k as i64) {
            return Err(node.err(format!(
                "weights expect {k} inputs, the input has {:?}",
                x.shape[1]
            )));
        }
        let wname = self.initializer(inputs[1], "matrix", &[r as i64, c as i64], w);
        let mut gemm_inputs = vec![x.onnx.clone(), wname];
        if has_bias {
            let (bshape, b) = self.konst_f32(node, inputs[2])?;
            if bshape != [m] {
                return Err(node.err(format!("bias shape {bshape:?}, expected [{m}]")));
            }
            gemm_inputs.push(self.initializer(inputs[2], "bias", &[m as i64], b));
        }
        let attrs = if transpose_b {
            vec![("transB", Attr::Int(1))]
        } else {
            vec![]
        };
        let result = self.emit_fused(node, "Gemm", &gemm_inputs, attrs, act);
        self.set(
            node,
            Act {
                onnx: result,
                layout: Layout::Tf,
                shape: vec![x.shape[0], Some(m as i64)],
            },
        );
        Ok(())
    }

    fn softmax(&mut self, node: &NodeDef) -> Result<(), TfjsError> {
        Self::check_float(node)?;
        let inputs = data_inputs(node)?;
        let [input] = inputs.as_slice() else {
            return Err(node.err("expects one input"));
        };
        let x = self.act(node, input)?;
        // TF normalises over the last logical axis: channels, which NCHW keeps at 1.
        let axis = if x.layout == Layout::Nchw { 1 } else { -1 };
        let out = self.unique(&node.name);
        self.g.node(
            "Softmax",
            &out,
            &[&x.onnx],
            &[],
            vec![("axis", Attr::Int(axis))],
        );
        self.set(node, Act { onnx: out, ..x });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(op: &str) -> NodeDef {
        NodeDef {
            name: "n".into(),
            op: op.into(),
            input: vec![],
            attr: BTreeMap::new(),
        }
    }

    #[test]
    fn same_padding_puts_the_extra_pixel_at_the_end() {
        let n = node("Conv");
        // 3x3 stride 1: one each side.
        assert_eq!(window(&n, "SAME", None, 32, 3, 1, 1).ok(), Some((32, 1, 1)));
        // 3x3 stride 2 on an even size: total 1, all at the end (TF), unlike a symmetric pad.
        assert_eq!(
            window(&n, "SAME", None, 128, 3, 2, 1).ok(),
            Some((64, 0, 1))
        );
        // 2x2 stride 2 on an odd size: total 1 at the end.
        assert_eq!(window(&n, "SAME", None, 7, 2, 2, 1).ok(), Some((4, 0, 1)));
        // 4x4 stride 1: total 3, 1 before and 2 after.
        assert_eq!(window(&n, "SAME", None, 10, 4, 1, 1).ok(), Some((10, 1, 2)));
        // dilation 2 makes a 3x3 act as 5x5.
        assert_eq!(window(&n, "SAME", None, 10, 3, 1, 2).ok(), Some((10, 2, 2)));
        assert_eq!(
            window(&n, "VALID", None, 128, 3, 1, 1).ok(),
            Some((126, 0, 0))
        );
        assert_eq!(
            window(&n, "VALID", None, 63, 2, 2, 1).ok(),
            Some((31, 0, 0))
        );
        assert_eq!(
            window(&n, "EXPLICIT", Some((2, 1)), 10, 3, 1, 1).ok(),
            Some((11, 2, 1))
        );
        assert!(window(&n, "VALID", None, 2, 3, 1, 1).is_err());
        assert!(window(&n, "FULL", None, 2, 3, 1, 1).is_err());
        assert!(window(&n, "SAME", None, 2, 3, 0, 1).is_err());
    }

    #[test]
    fn inputs_parse_like_tensorflow() {
        let n = node("Add");
        assert_eq!(parse_input(&n, "a/b").ok(), Some(Some("a/b")));
        assert_eq!(parse_input(&n, "a/b:0").ok(), Some(Some("a/b")));
        assert_eq!(parse_input(&n, "^a").ok(), Some(None));
        assert!(parse_input(&n, "a:1").is_err());
    }
}
