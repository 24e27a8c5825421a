//! Converts dlib's face-recognition ResNet (`dlib_face_recognition_resnet_model_v1.dat`)
//! into an ONNX graph: input `chip` float32 `[N,3,150,150]` holding raw RGB values 0..255,
//! output `descriptor` float32 `[N,128]`, unnormalised, as dlib returns it.
//!
//! dlib serialises a network recursively: each wrapper (`add_layer`, `add_tag_layer`,
//! `add_skip_layer`) writes a version number and then its sub-network *before* its own
//! layer, so the file holds all the wrappers' versions top-down, then the input layer,
//! then every layer's details bottom-up, each opening with a version string (`con_4`,
//! `affine_`, `relu_`...). We parse that generically into a bottom-up list of layers.
//! Tags and skips carry no id in the file (C++ knows them from the network's type), so
//! the list is matched against the network type of dlib's `dnn_face_recognition_ex.cpp`
//! ([`anet_type`]), which supplies them and is checked layer by layer against the file.
//!
//! The graph reproduces dlib's arithmetic: the input layer's mean subtraction and division
//! by 256; convolutions with dlib's explicit paddings (read from the file) and floor
//! output sizes; batch-norm-as-affine layers folded into the convolution before them;
//! pooling windows clipped at the border; and `add_prev`, which adds tensors of different
//! sizes by zero-padding the smaller at the bottom and right (a Pad before the Add).

use std::collections::BTreeMap;

use crate::onnx::{data_type, Attr, Dim, GraphBuilder};

use super::serialize::{DlibError, Reader, Result, MIN_FLOAT_BYTES};

/// Converts the bytes of `dlib_face_recognition_resnet_model_v1.dat` to ONNX bytes.
/// Deterministic: the same input always gives byte-identical output.
pub fn convert_embedder(dat: &[u8]) -> anyhow::Result<Vec<u8>> {
    Ok(convert(dat)?)
}

/// [`convert_embedder`] with the typed error.
pub fn convert(dat: &[u8]) -> Result<Vec<u8>> {
    let net = parse(dat)?;
    let program = match_architecture(&net, &anet_type())?;
    build_onnx(&net, &program)
}

// ------------------------------------------------------------------------------------
// Parsing

/// The input layer (`input_rgb_image_sized<NR,NC>`).
#[derive(Debug, Clone, PartialEq)]
pub struct InputLayer {
    /// Per-channel means subtracted before dividing by 256 (R, G, B).
    pub mean: [f32; 3],
    pub rows: usize,
    pub cols: usize,
}

/// Whether an affine layer scales per channel (after a convolution) or per element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AffineMode {
    Conv,
    Fc,
}

/// A window operation's geometry (convolution or pooling). A pooling window of 0 means
/// "the whole input" (dlib's `avg_pool_everything`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub rows: usize,
    pub cols: usize,
    pub stride_y: usize,
    pub stride_x: usize,
    pub pad_y: usize,
    pub pad_x: usize,
}

/// One computational layer, as read from the file.
#[derive(Debug, Clone, PartialEq)]
pub enum Layer {
    Con {
        filters: usize,
        channels: usize,
        window: Window,
        /// `[filters][channels][rows][cols]`, as ONNX's Conv wants (OIHW).
        weights: Vec<f32>,
        bias: Option<Vec<f32>>,
        /// `con_6` can fuse a ReLU.
        relu: bool,
    },
    Affine {
        mode: AffineMode,
        gamma: Vec<f32>,
        beta: Vec<f32>,
        /// `[k, nr, nc]` of gamma/beta (k only in conv mode).
        dims: [usize; 3],
    },
    Relu,
    MaxPool(Window),
    AvgPool(Window),
    AddPrev,
    Fc {
        inputs: usize,
        outputs: usize,
        /// `[inputs][outputs]`, as ONNX's MatMul wants.
        weights: Vec<f32>,
        bias: Option<Vec<f32>>,
    },
}

impl Layer {
    fn describe(&self) -> String {
        match self {
            Layer::Con {
                filters, window, ..
            } => {
                format!(
                    "con({filters} filters, {}x{}, stride {})",
                    window.rows, window.cols, window.stride_y
                )
            }
            Layer::Affine { .. } => "affine".into(),
            Layer::Relu => "relu".into(),
            Layer::MaxPool(w) => format!("max_pool({}x{}, stride {})", w.rows, w.cols, w.stride_y),
            Layer::AvgPool(w) => format!("avg_pool({}x{}, stride {})", w.rows, w.cols, w.stride_y),
            Layer::AddPrev => "add_prev".into(),
            Layer::Fc { outputs, bias, .. } => {
                format!(
                    "fc({outputs} outputs{})",
                    if bias.is_some() { "" } else { ", no bias" }
                )
            }
        }
    }
}

/// One element of the bottom-up layer list.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Layer(Layer),
    /// An `add_tag_layer` or `add_skip_layer`: the file does not say which, nor its id.
    TagOrSkip,
}

/// A parsed network: its input layer and its layers bottom-up (input side first).
#[derive(Debug, Clone, PartialEq)]
pub struct Network {
    pub loss: String,
    pub input: InputLayer,
    pub items: Vec<Item>,
}

/// What a wrapper's version number told us it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wrapper {
    /// `add_layer` over another layer (version 2): its details follow later.
    AddLayer { version: i64 },
    /// `add_tag_layer` or `add_skip_layer` (version 1): nothing follows later.
    TagOrSkip,
}

/// Parses a dlib DNN with a `loss_metric` on top and an `input_rgb_image_sized` at the
/// bottom into its layer list.
pub fn parse(dat: &[u8]) -> Result<Network> {
    let mut r = Reader::new(dat);
    let v = r.i64("add_loss_layer version")?;
    if v != 1 {
        return Err(r.unsupported(format!("add_loss_layer version {v}")));
    }
    let loss = r.expect_string(&["loss_metric_2"], "loss layer")?;
    let _margin = r.f32("loss margin")?;
    let _dist_thresh = r.f32("loss distance threshold")?;

    // The wrappers, top-down, until the add_layer sitting directly on the input layer.
    let mut wrappers = Vec::new();
    let bottom_version = loop {
        let v = r.i64("layer version")?;
        if next_is_input_layer(&r) {
            if !(2..=3).contains(&v) {
                return Err(r.unsupported(format!("add_layer (on the input) version {v}")));
            }
            break v;
        }
        wrappers.push(match v {
            2 => Wrapper::AddLayer { version: v },
            1 => Wrapper::TagOrSkip,
            _ => {
                return Err(r.unsupported(format!(
                    "layer wrapper version {v} (not add_layer 2, tag/skip 1)"
                )))
            }
        });
        // A network deeper than the file has bytes is corrupt; stop before it grows.
        if wrappers.len() > r.remaining() {
            return Err(r.malformed("layer nesting deeper than the file"));
        }
    };

    let input = read_input_layer(&mut r)?;
    let mut items = Vec::with_capacity(wrappers.len() + 1);
    items.push(Item::Layer(read_layer(&mut r)?));
    skip_add_layer_state(&mut r, true, bottom_version)?;
    for w in wrappers.iter().rev() {
        match *w {
            Wrapper::AddLayer { version } => {
                items.push(Item::Layer(read_layer(&mut r)?));
                skip_add_layer_state(&mut r, false, version)?;
            }
            Wrapper::TagOrSkip => items.push(Item::TagOrSkip),
        }
    }
    r.expect_end("the network")?;
    Ok(Network { loss, input, items })
}

/// Whether the next value is a string naming an input layer (`input_...`), which is how
/// the add_layer sitting on the input is told apart from the wrappers above it.
fn next_is_input_layer(r: &Reader<'_>) -> bool {
    let mut probe = r.clone();
    match probe.len(1, "probe") {
        Ok(n) => n >= 5 && matches!(probe.bytes(5, "probe"), Ok(b"input")),
        Err(_) => false,
    }
}

fn read_input_layer(r: &mut Reader<'_>) -> Result<InputLayer> {
    r.expect_string(&["input_rgb_image_sized"], "input layer")?;
    let mean = [r.f32("avg_red")?, r.f32("avg_green")?, r.f32("avg_blue")?];
    let rows = r.usize("input rows")?;
    let cols = r.usize("input cols")?;
    if rows == 0 || cols == 0 || rows > 1 << 14 || cols > 1 << 14 {
        return Err(r.malformed(format!("input size {rows}x{cols}")));
    }
    Ok(InputLayer { mean, rows, cols })
}

/// Skips what `add_layer` writes after its layer's details: three flags and the cached
/// training tensors (usually empty), plus, on the input, the sample expansion factor.
fn skip_add_layer_state(r: &mut Reader<'_>, on_input: bool, version: i64) -> Result<()> {
    r.bool("this_layer_setup_called")?;
    r.bool("gradient_input_is_stale")?;
    r.bool("get_output_and_gradient_input_disabled")?;
    read_tensor(r, false, "x_grad")?;
    read_tensor(r, false, "cached_output")?;
    // grad_final on the input layer, params_grad elsewhere.
    read_tensor(r, false, "gradient tensor")?;
    if on_input && version >= 3 {
        r.u64("sample_expansion_factor")?;
    }
    Ok(())
}

/// A `resizable_tensor`: returns its dims `[n, k, nr, nc]` and, when `keep`, its values.
fn read_tensor(r: &mut Reader<'_>, keep: bool, what: &str) -> Result<([usize; 4], Vec<f32>)> {
    let start = r.pos();
    let version = r.i64(what)?;
    let mut dims = [0usize; 4];
    for d in &mut dims {
        let v = r.i64(what)?;
        *d = usize::try_from(v).map_err(|_| DlibError::Malformed {
            offset: start,
            reason: format!("{what}: dim {v}"),
        })?;
    }
    let n = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| DlibError::Malformed {
            offset: start,
            reason: format!("{what}: dims {dims:?} overflow"),
        })?;
    let mut values = Vec::new();
    match version {
        // Version 2: raw little-endian IEEE floats.
        2 => {
            r.check_fits(start, n, 4, what)?;
            let bytes = r.bytes(n * 4, what)?;
            if keep {
                values = bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
            }
        }
        // Version 1: dlib's portable floats.
        1 => {
            r.check_fits(start, n, MIN_FLOAT_BYTES, what)?;
            if keep {
                values.reserve_exact(n);
            }
            for _ in 0..n {
                let v = r.f32(what)?;
                if keep {
                    values.push(v);
                }
            }
        }
        v => {
            return Err(DlibError::Unsupported {
                offset: start,
                reason: format!("{what}: tensor version {v}"),
            })
        }
    }
    Ok((dims, values))
}

/// An `alias_tensor` (a shape laid over part of a layer's parameter tensor).
fn read_alias(r: &mut Reader<'_>, what: &str) -> Result<[usize; 4]> {
    let start = r.pos();
    let v = r.i64(what)?;
    if v != 1 {
        return Err(DlibError::Unsupported {
            offset: start,
            reason: format!("{what}: alias_tensor version {v}"),
        });
    }
    let mut dims = [0usize; 4];
    for d in &mut dims {
        let x = r.i64(what)?;
        *d = usize::try_from(x).map_err(|_| DlibError::Malformed {
            offset: start,
            reason: format!("{what}: dim {x}"),
        })?;
    }
    Ok(dims)
}

fn size_of(dims: &[usize]) -> Option<usize> {
    dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

fn positive(r: &Reader<'_>, v: i64, what: &str) -> Result<usize> {
    match usize::try_from(v) {
        Ok(u) if u > 0 && u <= 1 << 16 => Ok(u),
        _ => Err(r.malformed(format!("{what} = {v}"))),
    }
}

fn non_negative(r: &Reader<'_>, v: i64, what: &str) -> Result<usize> {
    match usize::try_from(v) {
        Ok(u) if u <= 1 << 16 => Ok(u),
        _ => Err(r.malformed(format!("{what} = {v}"))),
    }
}

fn read_window(r: &mut Reader<'_>, what: &str, allow_zero: bool) -> Result<Window> {
    let rows = r.i64(what)?;
    let cols = r.i64(what)?;
    let sy = r.i64(what)?;
    let sx = r.i64(what)?;
    let py = r.i64(what)?;
    let px = r.i64(what)?;
    let size = |r: &Reader<'_>, v, name| {
        if allow_zero {
            non_negative(r, v, name)
        } else {
            positive(r, v, name)
        }
    };
    let w = Window {
        rows: size(r, rows, "window rows")?,
        cols: size(r, cols, "window cols")?,
        stride_y: positive(r, sy, "stride_y")?,
        stride_x: positive(r, sx, "stride_x")?,
        pad_y: non_negative(r, py, "padding_y")?,
        pad_x: non_negative(r, px, "padding_x")?,
    };
    // dlib requires padding < window (checked when its layer runs).
    if (w.rows > 0 && w.pad_y >= w.rows) || (w.cols > 0 && w.pad_x >= w.cols) {
        return Err(r.malformed(format!(
            "{what}: padding {}x{} not smaller than window {}x{}",
            w.pad_y, w.pad_x, w.rows, w.cols
        )));
    }
    Ok(w)
}

fn read_layer(r: &mut Reader<'_>) -> Result<Layer> {
    let start = r.pos();
    let name = r.string("layer type")?;
    match name.as_str() {
        "con_4" | "con_5" | "con_6" => {
            let (_, params) = read_tensor(r, true, "con params")?;
            let filters = r.i64("num_filters")?;
            let filters = positive(r, filters, "num_filters")?;
            let window = read_window(r, "con", false)?;
            let fdims = read_alias(r, "con filters")?;
            let bdims = read_alias(r, "con biases")?;
            for _ in 0..4 {
                r.f64("learning rate / weight decay multiplier")?;
            }
            let use_bias = if name != "con_4" {
                r.bool("use_bias")?
            } else {
                true
            };
            let relu = if name == "con_6" {
                r.bool("use_relu")?
            } else {
                false
            };
            if fdims[0] != filters
                || fdims[2] != window.rows
                || fdims[3] != window.cols
                || fdims[1] == 0
            {
                return Err(r.malformed(format!(
                    "con filters shaped {fdims:?} for {filters} {}x{} filters",
                    window.rows, window.cols
                )));
            }
            let channels = fdims[1];
            let nw = size_of(&fdims).ok_or_else(|| r.malformed("con filter size overflows"))?;
            let nb = if use_bias {
                size_of(&bdims).ok_or_else(|| r.malformed("con bias size overflows"))?
            } else {
                0
            };
            if use_bias && nb != filters {
                return Err(
                    r.malformed(format!("con biases shaped {bdims:?} for {filters} filters"))
                );
            }
            if params.len() != nw + nb {
                return Err(r.malformed(format!(
                    "con has {} parameters, expected {} + {}",
                    params.len(),
                    nw,
                    nb
                )));
            }
            let bias = use_bias.then(|| params[nw..].to_vec());
            let mut weights = params;
            weights.truncate(nw);
            Ok(Layer::Con {
                filters,
                channels,
                window,
                weights,
                bias,
                relu,
            })
        }
        "affine_" | "affine_2" => {
            let (_, params) = read_tensor(r, true, "affine params")?;
            let g = read_alias(r, "affine gamma")?;
            let b = read_alias(r, "affine beta")?;
            let mode = r.i32("affine mode")?;
            let disabled = if name == "affine_2" {
                r.bool("affine disabled")?
            } else {
                false
            };
            if disabled {
                return Err(r.unsupported("a disabled affine layer"));
            }
            let mode = match mode {
                0 => AffineMode::Conv,
                1 => AffineMode::Fc,
                m => return Err(r.malformed(format!("affine mode {m}"))),
            };
            let n = size_of(&g).ok_or_else(|| r.malformed("affine size overflows"))?;
            if g != b || g[0] != 1 || params.len() != 2 * n || n == 0 {
                return Err(r.malformed(format!(
                    "affine gamma {g:?}, beta {b:?}, {} parameters",
                    params.len()
                )));
            }
            if mode == AffineMode::Conv && (g[2] != 1 || g[3] != 1) {
                return Err(r.malformed(format!("conv-mode affine shaped {g:?}")));
            }
            let (gamma, beta) = params.split_at(n);
            Ok(Layer::Affine {
                mode,
                gamma: gamma.to_vec(),
                beta: beta.to_vec(),
                dims: [g[1], g[2], g[3]],
            })
        }
        "relu_" => Ok(Layer::Relu),
        "max_pool_2" => Ok(Layer::MaxPool(read_window(r, "max_pool", true)?)),
        "avg_pool_2" => Ok(Layer::AvgPool(read_window(r, "avg_pool", true)?)),
        "add_prev_" => Ok(Layer::AddPrev),
        "fc_2" => {
            let outputs = r.usize("fc num_outputs")?;
            let inputs = r.usize("fc num_inputs")?;
            let (_, params) = read_tensor(r, true, "fc params")?;
            let w = read_alias(r, "fc weights")?;
            let b = read_alias(r, "fc biases")?;
            let bias_mode = r.i32("fc bias mode")?;
            for _ in 0..4 {
                r.f64("learning rate / weight decay multiplier")?;
            }
            let has_bias = match bias_mode {
                0 => true,
                1 => false,
                m => return Err(r.malformed(format!("fc bias mode {m}"))),
            };
            // dlib multiplies the flattened input (rows) by a num_inputs x num_outputs matrix.
            if w[0] != inputs
                || w[1] != outputs
                || w[2] != 1
                || w[3] != 1
                || inputs == 0
                || outputs == 0
            {
                return Err(
                    r.malformed(format!("fc weights shaped {w:?} for {inputs} -> {outputs}"))
                );
            }
            let nw = inputs
                .checked_mul(outputs)
                .ok_or_else(|| r.malformed("fc size overflows"))?;
            let nb = if has_bias { outputs } else { 0 };
            if has_bias && size_of(&b) != Some(outputs) {
                return Err(r.malformed(format!("fc biases shaped {b:?} for {outputs} outputs")));
            }
            if params.len() != nw + nb {
                return Err(r.malformed(format!(
                    "fc has {} parameters, expected {} + {}",
                    params.len(),
                    nw,
                    nb
                )));
            }
            let bias = has_bias.then(|| params[nw..].to_vec());
            let mut weights = params;
            weights.truncate(nw);
            Ok(Layer::Fc {
                inputs,
                outputs,
                weights,
                bias,
            })
        }
        other => Err(DlibError::Unsupported {
            offset: start,
            reason: format!("layer type {other:?}"),
        }),
    }
}

// ------------------------------------------------------------------------------------
// The network type

/// One step of a network type, bottom-up: what the file must hold there, plus the tag and
/// skip ids the file does not record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Con {
        filters: usize,
        size: usize,
        stride: usize,
    },
    Affine,
    Relu,
    MaxPool {
        size: usize,
        stride: usize,
    },
    AvgPool {
        size: usize,
        stride: usize,
    },
    /// `avg_pool_everything`: a window as large as its input.
    AvgPoolEverything,
    Tag(u32),
    Skip(u32),
    AddPrev(u32),
    FcNoBias {
        outputs: usize,
    },
}

/// `anet_type` of dlib's `examples/dnn_face_recognition_ex.cpp`, the network of
/// `dlib_face_recognition_resnet_model_v1.dat`, bottom-up. The C++ spells it as nested
/// templates; these helpers mirror them.
pub fn anet_type() -> Vec<Step> {
    // block<N,BN,stride> = BN<con<N,3,3,1,1,relu<BN<con<N,3,3,stride,stride,SUBNET>>>>>
    fn block(s: &mut Vec<Step>, n: usize, stride: usize) {
        s.extend([
            Step::Con {
                filters: n,
                size: 3,
                stride,
            },
            Step::Affine,
            Step::Relu,
            Step::Con {
                filters: n,
                size: 3,
                stride: 1,
            },
            Step::Affine,
        ]);
    }
    // ares<N> = relu<add_prev1<block<N,affine,1,tag1<SUBNET>>>>
    fn ares(s: &mut Vec<Step>, n: usize) {
        s.push(Step::Tag(1));
        block(s, n, 1);
        s.extend([Step::AddPrev(1), Step::Relu]);
    }
    // ares_down<N> = relu<add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<N,affine,2,tag1<SUBNET>>>>>>>
    fn ares_down(s: &mut Vec<Step>, n: usize) {
        s.push(Step::Tag(1));
        block(s, n, 2);
        s.extend([
            Step::Tag(2),
            Step::Skip(1),
            Step::AvgPool { size: 2, stride: 2 },
            Step::AddPrev(2),
            Step::Relu,
        ]);
    }
    let mut s = vec![
        Step::Con {
            filters: 32,
            size: 7,
            stride: 2,
        },
        Step::Affine,
        Step::Relu,
        Step::MaxPool { size: 3, stride: 2 },
    ];
    // alevel4 = ares<32,ares<32,ares<32,SUBNET>>>
    for _ in 0..3 {
        ares(&mut s, 32);
    }
    // alevel3 = ares<64,ares<64,ares<64,ares_down<64,SUBNET>>>>
    ares_down(&mut s, 64);
    for _ in 0..3 {
        ares(&mut s, 64);
    }
    // alevel2 = ares<128,ares<128,ares_down<128,SUBNET>>>
    ares_down(&mut s, 128);
    for _ in 0..2 {
        ares(&mut s, 128);
    }
    // alevel1 = ares<256,ares<256,ares_down<256,SUBNET>>>
    ares_down(&mut s, 256);
    for _ in 0..2 {
        ares(&mut s, 256);
    }
    // alevel0 = ares_down<256,SUBNET>
    ares_down(&mut s, 256);
    s.extend([Step::AvgPoolEverything, Step::FcNoBias { outputs: 128 }]);
    s
}

/// Pairs every parsed item with its step of the network type, failing at the first
/// disagreement (a different network, or a misread file).
fn match_architecture<'n>(
    net: &'n Network,
    steps: &[Step],
) -> Result<Vec<(Step, Option<&'n Layer>)>> {
    let mismatch = |i: usize, expected: String, found: String| {
        DlibError::Structure(format!(
            "layer {i} (from the input): expected {expected}, found {found}; not dlib's face-recognition ResNet"
        ))
    };
    if net.items.len() != steps.len() {
        return Err(DlibError::Structure(format!(
            "{} layers where dlib's face-recognition ResNet has {}",
            net.items.len(),
            steps.len()
        )));
    }
    let mut out = Vec::with_capacity(steps.len());
    for (i, (item, step)) in net.items.iter().zip(steps).enumerate() {
        let layer = match item {
            Item::TagOrSkip => None,
            Item::Layer(l) => Some(l),
        };
        let ok = match (step, layer) {
            (Step::Tag(_) | Step::Skip(_), None) => true,
            (
                Step::Con {
                    filters,
                    size,
                    stride,
                },
                Some(Layer::Con {
                    filters: f,
                    window: w,
                    relu: false,
                    ..
                }),
            ) => {
                f == filters
                    && w.rows == *size
                    && w.cols == *size
                    && w.stride_y == *stride
                    && w.stride_x == *stride
            }
            (
                Step::Affine,
                Some(Layer::Affine {
                    mode: AffineMode::Conv,
                    ..
                }),
            ) => true,
            (Step::Relu, Some(Layer::Relu)) => true,
            (Step::MaxPool { size, stride }, Some(Layer::MaxPool(w)))
            | (Step::AvgPool { size, stride }, Some(Layer::AvgPool(w))) => {
                w.rows == *size && w.cols == *size && w.stride_y == *stride && w.stride_x == *stride
            }
            (Step::AvgPoolEverything, Some(Layer::AvgPool(w))) => {
                w.rows == 0
                    && w.cols == 0
                    && w.stride_y == 1
                    && w.stride_x == 1
                    && w.pad_y == 0
                    && w.pad_x == 0
            }
            (Step::AddPrev(_), Some(Layer::AddPrev)) => true,
            (
                Step::FcNoBias { outputs },
                Some(Layer::Fc {
                    outputs: o,
                    bias: None,
                    ..
                }),
            ) => o == outputs,
            _ => false,
        };
        if !ok {
            let found = layer.map_or_else(|| "a tag or skip".to_string(), Layer::describe);
            return Err(mismatch(i, format!("{step:?}"), found));
        }
        out.push((*step, layer));
    }
    Ok(out)
}

// ------------------------------------------------------------------------------------
// The ONNX graph

/// A tensor of the graph being built: its name and per-sample shape `[c, h, w]`.
#[derive(Debug, Clone)]
struct Value {
    name: String,
    shape: [usize; 3],
}

fn dim(v: usize) -> i64 {
    // Sizes are bounded by the checks at parse time (<= 2^16 per dimension, and the
    // weights fit in the file), so this never saturates in practice.
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// dlib's (and ONNX's) output size of a window: floor((in + 2 pad - window) / stride) + 1.
fn out_size(input: usize, window: usize, stride: usize, pad: usize, what: &str) -> Result<usize> {
    let padded = input + 2 * pad;
    if window > padded {
        return Err(DlibError::Structure(format!(
            "{what}: window {window} larger than its padded input {padded}"
        )));
    }
    Ok((padded - window) / stride + 1)
}

fn build_onnx(net: &Network, program: &[(Step, Option<&Layer>)]) -> Result<Vec<u8>> {
    let mut g = GraphBuilder::new("dlib_face_recognition_resnet_model_v1");
    let (rows, cols) = (net.input.rows, net.input.cols);
    g.input(
        "chip",
        data_type::FLOAT,
        &[
            Dim::Named("N"),
            Dim::Fixed(3),
            Dim::Fixed(dim(rows)),
            Dim::Fixed(dim(cols)),
        ],
    );

    // dlib's input layer: (pixel - mean) / 256, computed in float; dividing by a power
    // of two is exact, so multiplying by 1/256 gives the very same values.
    let mean = g.initializer_f32("input_mean", &[1, 3, 1, 1], &net.input.mean);
    let scale = g.initializer_f32("input_scale", &[], &[1.0 / 256.0]);
    let centred = g.fresh("centred");
    g.node("Sub", &centred, &["chip", &mean], &[], vec![]);
    let normalised = g.fresh("normalised");
    g.node("Mul", &normalised, &[&centred, &scale], &[], vec![]);
    let mut cur = Value {
        name: normalised,
        shape: [3, rows, cols],
    };
    let mut tags: BTreeMap<u32, Value> = BTreeMap::new();

    let mut i = 0;
    while i < program.len() {
        let (step, layer) = program[i];
        match (step, layer) {
            (Step::Tag(id), _) => {
                tags.insert(id, cur.clone());
            }
            (Step::Skip(id), _) => {
                cur = tags
                    .get(&id)
                    .cloned()
                    .ok_or_else(|| structure(format!("skip{id} before any tag{id}")))?;
            }
            (
                _,
                Some(Layer::Con {
                    filters,
                    channels,
                    window,
                    weights,
                    bias,
                    relu,
                }),
            ) => {
                if *channels != cur.shape[0] {
                    return Err(structure(format!(
                        "con expects {channels} channels, gets {}",
                        cur.shape[0]
                    )));
                }
                let mut w = weights.clone();
                let mut b = bias.clone().unwrap_or_else(|| vec![0.0; *filters]);
                // Fold a following conv-mode affine (dlib's frozen batch norm):
                // gamma * (W x + b) + beta = (gamma W) x + (gamma b + beta).
                if let Some((
                    _,
                    Some(Layer::Affine {
                        mode: AffineMode::Conv,
                        gamma,
                        beta,
                        dims,
                    }),
                )) = program.get(i + 1)
                {
                    if dims[0] != *filters {
                        return Err(structure(format!(
                            "affine of {} channels after con of {filters}",
                            dims[0]
                        )));
                    }
                    let per_filter = w.len() / filters;
                    for (o, chunk) in w.chunks_mut(per_filter).enumerate() {
                        let s = f64::from(gamma[o]);
                        for x in chunk {
                            *x = (f64::from(*x) * s) as f32;
                        }
                        b[o] = (f64::from(b[o]) * s + f64::from(beta[o])) as f32;
                    }
                    i += 1;
                }
                let name = g.fresh("conv");
                let wn = g.initializer_f32(
                    &format!("{name}_w"),
                    &[
                        dim(*filters),
                        dim(*channels),
                        dim(window.rows),
                        dim(window.cols),
                    ],
                    &w,
                );
                let bn = g.initializer_f32(&format!("{name}_b"), &[dim(*filters)], &b);
                g.node(
                    "Conv",
                    &name,
                    &[&cur.name, &wn, &bn],
                    &[],
                    vec![
                        (
                            "kernel_shape",
                            Attr::Ints(vec![dim(window.rows), dim(window.cols)]),
                        ),
                        (
                            "strides",
                            Attr::Ints(vec![dim(window.stride_y), dim(window.stride_x)]),
                        ),
                        (
                            "pads",
                            Attr::Ints(vec![
                                dim(window.pad_y),
                                dim(window.pad_x),
                                dim(window.pad_y),
                                dim(window.pad_x),
                            ]),
                        ),
                    ],
                );
                let h = out_size(
                    cur.shape[1],
                    window.rows,
                    window.stride_y,
                    window.pad_y,
                    "con",
                )?;
                let wd = out_size(
                    cur.shape[2],
                    window.cols,
                    window.stride_x,
                    window.pad_x,
                    "con",
                )?;
                cur = Value {
                    name,
                    shape: [*filters, h, wd],
                };
                if *relu {
                    cur = relu_node(&mut g, cur);
                }
            }
            (
                _,
                Some(Layer::Affine {
                    mode,
                    gamma,
                    beta,
                    dims,
                }),
            ) => {
                // Only reached when no convolution precedes it.
                let shape = match mode {
                    AffineMode::Conv => [dims[0], 1, 1],
                    AffineMode::Fc => *dims,
                };
                let fits = match mode {
                    AffineMode::Conv => shape[0] == cur.shape[0],
                    AffineMode::Fc => shape == cur.shape,
                };
                if !fits {
                    return Err(structure(format!(
                        "affine shaped {dims:?} on a {:?} tensor",
                        cur.shape
                    )));
                }
                let d = [1, dim(shape[0]), dim(shape[1]), dim(shape[2])];
                let name = g.fresh("affine");
                let gn = g.initializer_f32(&format!("{name}_gamma"), &d, gamma);
                let bn = g.initializer_f32(&format!("{name}_beta"), &d, beta);
                let scaled = g.fresh("scaled");
                g.node("Mul", &scaled, &[&cur.name, &gn], &[], vec![]);
                g.node("Add", &name, &[&scaled, &bn], &[], vec![]);
                cur.name = name;
            }
            (_, Some(Layer::Relu)) => cur = relu_node(&mut g, cur),
            (_, Some(Layer::MaxPool(w))) | (_, Some(Layer::AvgPool(w))) => {
                let is_max = matches!(layer, Some(Layer::MaxPool(_)));
                let wr = if w.rows == 0 { cur.shape[1] } else { w.rows };
                let wc = if w.cols == 0 { cur.shape[2] } else { w.cols };
                let h = out_size(cur.shape[1], wr, w.stride_y, w.pad_y, "pool")?;
                let wd = out_size(cur.shape[2], wc, w.stride_x, w.pad_x, "pool")?;
                let name = g.fresh(if is_max { "maxpool" } else { "avgpool" });
                if !is_max && h == 1 && wd == 1 && wr == cur.shape[1] && wc == cur.shape[2] {
                    g.node("GlobalAveragePool", &name, &[&cur.name], &[], vec![]);
                } else {
                    let mut attrs = vec![
                        ("kernel_shape", Attr::Ints(vec![dim(wr), dim(wc)])),
                        (
                            "strides",
                            Attr::Ints(vec![dim(w.stride_y), dim(w.stride_x)]),
                        ),
                        (
                            "pads",
                            Attr::Ints(vec![
                                dim(w.pad_y),
                                dim(w.pad_x),
                                dim(w.pad_y),
                                dim(w.pad_x),
                            ]),
                        ),
                    ];
                    if !is_max {
                        // dlib averages over the part of the window inside the image.
                        attrs.push(("count_include_pad", Attr::Int(0)));
                    }
                    g.node(
                        if is_max { "MaxPool" } else { "AveragePool" },
                        &name,
                        &[&cur.name],
                        &[],
                        attrs,
                    );
                }
                cur = Value {
                    name,
                    shape: [cur.shape[0], h, wd],
                };
            }
            (Step::AddPrev(id), Some(Layer::AddPrev)) => {
                let other = tags
                    .get(&id)
                    .cloned()
                    .ok_or_else(|| structure(format!("add_prev{id} before any tag{id}")))?;
                // dlib's add_prev: the output takes the larger size in every dimension and
                // each input contributes zeros where it has no element (top-left aligned).
                let shape = [0, 1, 2].map(|d| cur.shape[d].max(other.shape[d]));
                let a = pad_to(&mut g, &cur, shape);
                let b = pad_to(&mut g, &other, shape);
                let name = g.fresh("add");
                g.node("Add", &name, &[&a, &b], &[], vec![]);
                cur = Value { name, shape };
            }
            (
                _,
                Some(Layer::Fc {
                    inputs,
                    outputs,
                    weights,
                    bias,
                }),
            ) => {
                let flat = cur.shape.iter().product::<usize>();
                if flat != *inputs {
                    return Err(structure(format!(
                        "fc expects {inputs} inputs, gets {:?}",
                        cur.shape
                    )));
                }
                let name = g.fresh("flatten");
                g.node(
                    "Flatten",
                    &name,
                    &[&cur.name],
                    &[],
                    vec![("axis", Attr::Int(1))],
                );
                let mm = g.fresh("fc");
                let wn =
                    g.initializer_f32(&format!("{mm}_w"), &[dim(*inputs), dim(*outputs)], weights);
                g.node("MatMul", &mm, &[&name, &wn], &[], vec![]);
                cur = Value {
                    name: mm,
                    shape: [*outputs, 1, 1],
                };
                if let Some(b) = bias {
                    let bn = g.initializer_f32(&format!("{}_b", cur.name), &[dim(*outputs)], b);
                    let added = g.fresh("fc_bias");
                    g.node("Add", &added, &[&cur.name, &bn], &[], vec![]);
                    cur.name = added;
                }
            }
            (step, layer) => {
                return Err(structure(format!(
                    "cannot emit {step:?} for {:?}",
                    layer.map(Layer::describe)
                )));
            }
        }
        i += 1;
    }

    if cur.shape[1] != 1 || cur.shape[2] != 1 {
        return Err(structure(format!(
            "the network ends in a {:?} tensor, not a vector",
            cur.shape
        )));
    }
    g.node(
        "Identity",
        "descriptor_identity",
        &[&cur.name],
        &["descriptor"],
        vec![],
    );
    g.output(
        "descriptor",
        data_type::FLOAT,
        &[Dim::Named("N"), Dim::Fixed(dim(cur.shape[0]))],
    );
    let doc = format!(
        "dlib_face_recognition_resnet_model_v1 (dlib {}), converted by CleanPlate's model-setup. \
         Input: raw RGB 0..255, NCHW; the graph subtracts the mean {:?} and divides by 256. \
         Output: the 128-d descriptor, not normalised.",
        net.loss, net.input.mean
    );
    Ok(g.finish(&doc))
}

fn structure(reason: String) -> DlibError {
    DlibError::Structure(reason)
}

fn relu_node(g: &mut GraphBuilder, v: Value) -> Value {
    let name = g.fresh("relu");
    g.node("Relu", &name, &[&v.name], &[], vec![]);
    Value {
        name,
        shape: v.shape,
    }
}

/// Zero-pads `v` at the end of each dimension up to `shape` (a no-op when equal).
fn pad_to(g: &mut GraphBuilder, v: &Value, shape: [usize; 3]) -> String {
    if v.shape == shape {
        return v.name.clone();
    }
    let name = g.fresh("pad");
    // ONNX pads: all begins (N, C, H, W), then all ends.
    let pads = [
        0,
        0,
        0,
        0,
        0,
        dim(shape[0] - v.shape[0]),
        dim(shape[1] - v.shape[1]),
        dim(shape[2] - v.shape[2]),
    ];
    let pn = g.initializer_i64(&format!("{name}_pads"), &[8], &pads);
    g.node(
        "Pad",
        &name,
        &[&v.name, &pn],
        &[],
        vec![("mode", Attr::Str("constant".into()))],
    );
    name
}

#[cfg(test)]
mod tests {
    use super::super::serialize::tests::{float, int, string};
    use super::*;

    #[test]
    fn anet_type_has_dlibs_layer_counts() {
        let s = anet_type();
        let count = |f: &dyn Fn(&Step) -> bool| s.iter().filter(|x| f(x)).count();
        assert_eq!(count(&|x| matches!(x, Step::Con { .. })), 29);
        assert_eq!(count(&|x| matches!(x, Step::Affine)), 29);
        assert_eq!(count(&|x| matches!(x, Step::Relu)), 29);
        assert_eq!(count(&|x| matches!(x, Step::AddPrev(_))), 14);
        assert_eq!(
            count(&|x| matches!(x, Step::AvgPool { .. } | Step::AvgPoolEverything)),
            5
        );
        assert_eq!(
            count(&|x| matches!(x, Step::Tag(_) | Step::Skip(_))),
            14 + 2 * 4
        );
    }

    #[test]
    fn output_sizes_follow_dlib() {
        // 150 -> conv 7/2 -> 72 -> max pool 3/2 -> 35; the 3x3 beside 4x4 of the third level.
        assert_eq!(out_size(150, 7, 2, 0, "t").unwrap(), 72);
        assert_eq!(out_size(72, 3, 2, 0, "t").unwrap(), 35);
        assert_eq!(out_size(8, 3, 2, 0, "t").unwrap(), 3);
        assert_eq!(out_size(8, 2, 2, 0, "t").unwrap(), 4);
        assert_eq!(out_size(35, 3, 1, 1, "t").unwrap(), 35);
        assert!(out_size(2, 3, 1, 0, "t").is_err());
    }

    fn tensor_v2(dims: [i64; 4], values: &[f32]) -> Vec<u8> {
        let mut b = int(2);
        for d in dims {
            b.extend(int(d));
        }
        for v in values {
            b.extend(v.to_le_bytes());
        }
        b
    }

    fn alias(dims: [i64; 4]) -> Vec<u8> {
        let mut b = int(1);
        for d in dims {
            b.extend(int(d));
        }
        b
    }

    fn add_layer_tail(on_input: bool) -> Vec<u8> {
        let mut b = b"100".to_vec();
        for _ in 0..3 {
            b.extend(tensor_v2([0, 0, 0, 0], &[]));
        }
        if on_input {
            b.extend(int(1));
        }
        b
    }

    /// loss_metric over fc(2, no bias) over relu over tag1 (version 1) over
    /// con(2 filters, 1x1) over input 2x2.
    fn tiny_net() -> Vec<u8> {
        let mut b = int(1);
        b.extend(string("loss_metric_2"));
        b.extend(float(0.04));
        b.extend(float(0.6));
        b.extend(int(2)); // fc add_layer
        b.extend(int(2)); // relu add_layer
        b.extend(int(1)); // tag
        b.extend(int(3)); // con add_layer on the input
        b.extend(string("input_rgb_image_sized"));
        for m in [122.782f32, 117.001, 104.298] {
            b.extend(float(m));
        }
        b.extend(int(2));
        b.extend(int(2));
        // con_4: 2 filters of 3x1x1 plus 2 biases.
        b.extend(string("con_4"));
        b.extend(tensor_v2(
            [8, 1, 1, 1],
            &[1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.5, -0.5],
        ));
        b.extend(int(2));
        for v in [1, 1, 1, 1, 0, 0] {
            b.extend(int(v));
        }
        b.extend(alias([2, 3, 1, 1]));
        b.extend(alias([1, 2, 1, 1]));
        for v in [1.0f32, 1.0, 1.0, 0.0] {
            b.extend(float(v));
        }
        b.extend(add_layer_tail(true));
        // tag: nothing more. relu:
        b.extend(string("relu_"));
        b.extend(add_layer_tail(false));
        // fc_2: 8 inputs, 2 outputs, no bias.
        b.extend(string("fc_2"));
        b.extend(int(2));
        b.extend(int(8));
        b.extend(tensor_v2([16, 1, 1, 1], &[0.25; 16]));
        b.extend(alias([8, 2, 1, 1]));
        b.extend(alias([0, 0, 0, 0]));
        b.extend(int(1));
        for v in [1.0f32, 1.0, 1.0, 0.0] {
            b.extend(float(v));
        }
        b.extend(add_layer_tail(false));
        b
    }

    #[test]
    fn parses_a_small_network_bottom_up() {
        let net = parse(&tiny_net()).unwrap();
        assert_eq!(
            net.input,
            InputLayer {
                mean: [122.782, 117.001, 104.298],
                rows: 2,
                cols: 2
            }
        );
        assert_eq!(net.items.len(), 4);
        match &net.items[0] {
            Item::Layer(Layer::Con {
                filters: 2,
                channels: 3,
                weights,
                bias: Some(b),
                ..
            }) => {
                assert_eq!(weights, &[1.0, 0.0, 0.0, 0.0, 0.0, 1.0]);
                assert_eq!(b, &[0.5, -0.5]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(net.items[1], Item::TagOrSkip);
        assert_eq!(net.items[2], Item::Layer(Layer::Relu));
        assert!(matches!(
            &net.items[3],
            Item::Layer(Layer::Fc {
                inputs: 8,
                outputs: 2,
                bias: None,
                ..
            })
        ));
        // It is not dlib's ResNet, and says so.
        let e = convert(&tiny_net()).unwrap_err();
        assert!(matches!(e, DlibError::Structure(_)), "{e}");
    }

    #[test]
    fn a_small_network_emits_a_valid_graph_when_its_type_is_given() {
        use crate::onnx::ModelProto;
        use prost::Message;
        let net = parse(&tiny_net()).unwrap();
        let steps = [
            Step::Con {
                filters: 2,
                size: 1,
                stride: 1,
            },
            Step::Tag(1),
            Step::Relu,
            Step::FcNoBias { outputs: 2 },
        ];
        let program = match_architecture(&net, &steps).unwrap();
        let bytes = build_onnx(&net, &program).unwrap();
        let m = ModelProto::decode(bytes.as_slice()).unwrap();
        let ops: Vec<_> = m
            .graph
            .unwrap()
            .node
            .iter()
            .map(|n| n.op_type.clone())
            .collect();
        assert_eq!(
            ops,
            ["Sub", "Mul", "Conv", "Relu", "Flatten", "MatMul", "Identity"]
        );
    }

    #[test]
    fn every_truncation_of_a_network_is_an_error() {
        let dat = tiny_net();
        for cut in 0..dat.len() {
            assert!(parse(&dat[..cut]).is_err(), "cut at {cut}");
        }
        let mut long = dat;
        long.push(0);
        assert!(parse(&long).is_err());
    }

    #[test]
    fn absurd_tensor_sizes_are_refused_without_allocating() {
        let mut b = int(2);
        for d in [1i64 << 40, 1 << 20, 1, 1] {
            b.extend(int(d));
        }
        let e = read_tensor(&mut Reader::new(&b), true, "t").unwrap_err();
        assert!(matches!(e, DlibError::Malformed { .. }), "{e}");
    }
}
