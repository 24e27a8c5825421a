//! Decoding a TF.js weights file against its manifest: the `.bin` holds every weight of
//! every manifest group back to back, in manifest order, little-endian, each either in its
//! own dtype or quantised (float16, or affine uint8/uint16 with `scale` and `min`). We
//! dequantise to float32 exactly as TF.js does when it loads the model, so the ONNX graph
//! computes with the same numbers TF.js does.
//!
//! Sizes come from untrusted input: every multiplication is checked and the file must be
//! exactly as long as the manifest says (a short file is a truncated download, a long one
//! the wrong file).

use std::collections::BTreeMap;

use super::model_json::ManifestGroup;
use super::TfjsError;

/// Values of one decoded weight.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Data {
    F32(Vec<f32>),
    I32(Vec<i32>),
}

/// One decoded weight (a constant of the graph).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Tensor {
    pub shape: Vec<usize>,
    pub data: Data,
}

/// Decodes `bin` into named tensors following the manifest.
pub(crate) fn decode(
    groups: &[ManifestGroup],
    bin: &[u8],
) -> Result<BTreeMap<String, Tensor>, TfjsError> {
    let err = |msg: String| TfjsError::Weights(msg);
    let mut out = BTreeMap::new();
    let mut offset = 0usize;
    for spec in groups.iter().flat_map(|g| g.weights.iter()) {
        let mut shape = Vec::with_capacity(spec.shape.len());
        for &d in &spec.shape {
            let d = usize::try_from(d).map_err(|_| {
                err(format!(
                    "{}: invalid dimension {d} in {:?}",
                    spec.name, spec.shape
                ))
            })?;
            shape.push(d);
        }
        let count = shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| {
                err(format!(
                    "{}: shape {:?} is too large",
                    spec.name, spec.shape
                ))
            })?;
        let elem_bytes = match (&spec.quantization, spec.dtype.as_str()) {
            (None, "float32" | "int32") => 4,
            (Some(q), "float32") => match q.dtype.as_str() {
                "float16" | "uint16" => 2,
                "uint8" => 1,
                other => {
                    return Err(err(format!(
                        "{}: unsupported quantisation dtype {other:?}",
                        spec.name
                    )))
                }
            },
            (Some(q), other) => {
                return Err(err(format!(
                    "{}: quantised ({}) weights of dtype {other:?} are not supported",
                    spec.name, q.dtype
                )))
            }
            (None, other) => {
                return Err(err(format!(
                    "{}: unsupported weight dtype {other:?}",
                    spec.name
                )))
            }
        };
        let size = count.checked_mul(elem_bytes).ok_or_else(|| {
            err(format!(
                "{}: shape {:?} is too large",
                spec.name, spec.shape
            ))
        })?;
        let end = offset.checked_add(size).filter(|&e| e <= bin.len()).ok_or_else(|| {
            err(format!(
                "the weights file is truncated: {} needs bytes {offset}..{} but the file has {} bytes",
                spec.name,
                offset.saturating_add(size),
                bin.len()
            ))
        })?;
        let bytes = &bin[offset..end];
        offset = end;

        let data = match (&spec.quantization, spec.dtype.as_str()) {
            (None, "int32") => Data::I32(
                bytes
                    .chunks_exact(4)
                    .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            ),
            (None, _) => Data::F32(
                bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            ),
            (Some(q), _) if q.dtype == "float16" => Data::F32(
                bytes
                    .chunks_exact(2)
                    .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
                    .collect(),
            ),
            (Some(q), _) => {
                let (Some(scale), Some(min)) = (q.scale, q.min) else {
                    return Err(err(format!(
                        "{}: {} quantisation without scale and min",
                        spec.name, q.dtype
                    )));
                };
                // TF.js computes `q * scale + min` in JavaScript doubles and stores the result
                // in a Float32Array: same here, so the rounding matches.
                let values: Vec<f32> = if q.dtype == "uint8" {
                    bytes
                        .iter()
                        .map(|&b| (f64::from(b) * scale + min) as f32)
                        .collect()
                } else {
                    bytes
                        .chunks_exact(2)
                        .map(|c| (f64::from(u16::from_le_bytes([c[0], c[1]])) * scale + min) as f32)
                        .collect()
                };
                Data::F32(values)
            }
        };
        if out
            .insert(spec.name.clone(), Tensor { shape, data })
            .is_some()
        {
            return Err(err(format!(
                "weight {:?} appears twice in the manifest",
                spec.name
            )));
        }
    }
    if offset != bin.len() {
        return Err(err(format!(
            "the weights file has {} bytes but the manifest describes {offset}: wrong file for this model.json?",
            bin.len()
        )));
    }
    Ok(out)
}

/// IEEE 754 binary16 to binary32; exact (every half is representable as a float).
pub(crate) fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1f);
    let mant = u32::from(h & 0x3ff);
    let bits = match exp {
        0 if mant == 0 => sign,
        0 => {
            // Subnormal half: mant * 2^-24, a normal float; the multiplication is exact.
            let v = mant as f32 * (1.0 / 16_777_216.0);
            return if sign != 0 { -v } else { v };
        }
        31 => sign | 0x7f80_0000 | (mant << 13),
        _ => sign | ((exp + 127 - 15) << 23) | (mant << 13),
    };
    f32::from_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tfjs::model_json::{ManifestGroup, Quantization, WeightSpec};

    #[test]
    fn f16_known_values() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0400), 2f32.powi(-14));
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x03ff), 1023.0 * 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x8000).to_bits(), 0x8000_0000);
        assert_eq!(f16_to_f32(0x7c00), f32::INFINITY);
        assert_eq!(f16_to_f32(0xfc00), f32::NEG_INFINITY);
        assert!(f16_to_f32(0x7e00).is_nan());
    }

    #[test]
    fn f16_matches_the_definition_for_every_finite_value() {
        for h in 0u16..=0xffff {
            let exp = i32::from((h >> 10) & 0x1f);
            if exp == 31 {
                continue;
            }
            let mant = f64::from(h & 0x3ff);
            let magnitude = if exp == 0 {
                mant * 2f64.powi(-24)
            } else {
                (1.0 + mant / 1024.0) * 2f64.powi(exp - 15)
            };
            let expected = if h & 0x8000 != 0 {
                -magnitude
            } else {
                magnitude
            };
            assert_eq!(f64::from(f16_to_f32(h)), expected, "half {h:#06x}");
        }
    }

    fn spec(
        name: &str,
        shape: &[i64],
        dtype: &str,
        q: Option<(&str, Option<f64>, Option<f64>)>,
    ) -> WeightSpec {
        WeightSpec {
            name: name.into(),
            shape: shape.to_vec(),
            dtype: dtype.into(),
            quantization: q.map(|(d, scale, min)| Quantization {
                dtype: d.into(),
                scale,
                min,
            }),
        }
    }

    fn group(weights: Vec<WeightSpec>) -> Vec<ManifestGroup> {
        vec![ManifestGroup { weights }]
    }

    #[test]
    fn decodes_each_kind_in_order() {
        let groups = group(vec![
            spec("a", &[2], "float32", None),
            spec("b", &[2], "float32", Some(("float16", None, None))),
            spec("c", &[1], "int32", None),
            spec("d", &[2], "float32", Some(("uint8", Some(0.5), Some(-1.0)))),
        ]);
        let mut bin = Vec::new();
        bin.extend(1.5f32.to_le_bytes());
        bin.extend((-3.0f32).to_le_bytes());
        bin.extend(0x3c00u16.to_le_bytes());
        bin.extend(0xc000u16.to_le_bytes());
        bin.extend((-7i32).to_le_bytes());
        bin.extend([0u8, 4]);
        let w = decode(&groups, &bin).expect("decodes");
        assert_eq!(w["a"].data, Data::F32(vec![1.5, -3.0]));
        assert_eq!(w["b"].data, Data::F32(vec![1.0, -2.0]));
        assert_eq!(w["c"].data, Data::I32(vec![-7]));
        assert_eq!(w["d"].data, Data::F32(vec![-1.0, 1.0]));
        assert_eq!(w["a"].shape, vec![2]);
    }

    #[test]
    fn rejects_truncated_overlong_and_odd_files() {
        let groups = group(vec![spec("a", &[3], "float32", None)]);
        let e = decode(&groups, &[0u8; 11]).expect_err("truncated");
        assert!(e.to_string().contains("truncated"), "{e}");
        let e = decode(&groups, &[0u8; 13]).expect_err("too long");
        assert!(e.to_string().contains("13 bytes"), "{e}");
        assert!(decode(&group(vec![spec("a", &[-2], "float32", None)]), &[]).is_err());
        assert!(decode(
            &group(vec![spec("a", &[1 << 40, 1 << 40], "float32", None)]),
            &[]
        )
        .is_err());
        assert!(decode(&group(vec![spec("a", &[1], "string", None)]), &[0; 4]).is_err());
        assert!(decode(
            &group(vec![spec(
                "a",
                &[1],
                "float32",
                Some(("uint8", None, None))
            )]),
            &[0]
        )
        .is_err());
        let dup = group(vec![
            spec("a", &[1], "float32", None),
            spec("a", &[1], "float32", None),
        ]);
        assert!(decode(&dup, &[0; 8]).is_err());
    }
}
