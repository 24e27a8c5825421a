//! Five-point face landmarks: a Rust port of dlib's ensemble-of-regression-trees (ERT)
//! shape predictor (Kazemi & Sullivan 2014), running on the model set-up converts from
//! `shape_predictor_5_face_landmarks.dat`.
//!
//! The model lives in our own small file format (`.ert`, described on
//! [`ShapePredictorModel::write`]) so that the runtime does not need dlib's serialisation
//! code; `model-setup` reads dlib's file and writes this one.

use std::io::{Read, Write};

/// The magic bytes and version at the head of an `.ert` file.
pub const ERT_MAGIC: &[u8; 8] = b"CPERT\0\0\x01";

/// One split of a regression tree: compare the intensities of two feature pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Split {
    pub idx1: u32,
    pub idx2: u32,
    pub thresh: f32,
}

/// A complete binary tree stored breadth-first, as dlib stores it: node `i` has children
/// `2i+1` and `2i+2`; leaves follow the splits.
#[derive(Debug, Clone, PartialEq)]
pub struct RegressionTree {
    pub splits: Vec<Split>,
    /// `num_leaves * 2 * num_parts` values: each leaf's shape update, x/y interleaved.
    pub leaf_values: Vec<f32>,
}

/// One cascade level: the feature pixels (each anchored to a landmark, offset by a delta
/// in the normalised face frame) and the trees that read them.
#[derive(Debug, Clone, PartialEq)]
pub struct Cascade {
    pub anchor_idx: Vec<u32>,
    pub deltas: Vec<[f32; 2]>,
    pub trees: Vec<RegressionTree>,
}

/// The whole shape predictor.
#[derive(Debug, Clone, PartialEq)]
pub struct ShapePredictorModel {
    /// The mean shape in box-normalised coordinates, x/y interleaved (`2 * num_parts`).
    pub initial_shape: Vec<f32>,
    pub cascades: Vec<Cascade>,
}

#[derive(Debug, thiserror::Error)]
pub enum ErtFormatError {
    #[error("not an .ert landmark model (bad magic)")]
    BadMagic,
    #[error("malformed .ert landmark model: {0}")]
    Malformed(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl ShapePredictorModel {
    pub fn num_parts(&self) -> usize {
        self.initial_shape.len() / 2
    }

    /// Writes the model. Format, all little-endian:
    ///
    /// ```text
    /// magic            8 bytes  "CPERT\0\0\x01"
    /// num_parts        u32
    /// initial_shape    f32 * 2*num_parts
    /// num_cascades     u32
    /// per cascade:
    ///   num_features   u32
    ///   anchor_idx     u32 * num_features
    ///   deltas         f32 * 2*num_features          (dx, dy interleaved)
    ///   num_trees      u32
    ///   per tree:
    ///     num_splits   u32
    ///     splits       (u32 idx1, u32 idx2, f32 thresh) * num_splits
    ///     num_leaves   u32
    ///     leaf_values  f32 * num_leaves*2*num_parts
    /// ```
    pub fn write(&self, out: &mut impl Write) -> std::io::Result<()> {
        out.write_all(ERT_MAGIC)?;
        write_u32(out, self.num_parts() as u32)?;
        write_f32s(out, &self.initial_shape)?;
        write_u32(out, self.cascades.len() as u32)?;
        for c in &self.cascades {
            write_u32(out, c.anchor_idx.len() as u32)?;
            for &a in &c.anchor_idx {
                write_u32(out, a)?;
            }
            for d in &c.deltas {
                write_f32s(out, d)?;
            }
            write_u32(out, c.trees.len() as u32)?;
            for t in &c.trees {
                write_u32(out, t.splits.len() as u32)?;
                for s in &t.splits {
                    write_u32(out, s.idx1)?;
                    write_u32(out, s.idx2)?;
                    write_f32s(out, &[s.thresh])?;
                }
                let leaves = t.leaf_values.len() / self.initial_shape.len().max(1);
                write_u32(out, leaves as u32)?;
                write_f32s(out, &t.leaf_values)?;
            }
        }
        Ok(())
    }

    /// Reads and validates a model written by [`write`](Self::write). Every index is
    /// checked, so a prediction can never read out of bounds.
    pub fn read(input: &mut impl Read) -> Result<Self, ErtFormatError> {
        let mut magic = [0u8; 8];
        input.read_exact(&mut magic)?;
        if &magic != ERT_MAGIC {
            return Err(ErtFormatError::BadMagic);
        }
        let num_parts = read_len(input, 1 << 12, "num_parts")?;
        let initial_shape = read_f32s(input, 2 * num_parts)?;
        let num_cascades = read_len(input, 1 << 10, "num_cascades")?;
        let mut cascades = Vec::with_capacity(num_cascades);
        for _ in 0..num_cascades {
            let num_features = read_len(input, 1 << 20, "num_features")?;
            let mut anchor_idx = Vec::with_capacity(num_features);
            for _ in 0..num_features {
                let a = read_u32(input)?;
                if a as usize >= num_parts {
                    return Err(ErtFormatError::Malformed(format!("anchor {a} >= {num_parts} parts")));
                }
                anchor_idx.push(a);
            }
            let flat = read_f32s(input, 2 * num_features)?;
            let deltas = flat.chunks_exact(2).map(|c| [c[0], c[1]]).collect();
            let num_trees = read_len(input, 1 << 20, "num_trees")?;
            let mut trees = Vec::with_capacity(num_trees);
            for _ in 0..num_trees {
                let num_splits = read_len(input, 1 << 20, "num_splits")?;
                let mut splits = Vec::with_capacity(num_splits);
                for _ in 0..num_splits {
                    let idx1 = read_u32(input)?;
                    let idx2 = read_u32(input)?;
                    let thresh = read_f32s(input, 1)?[0];
                    if idx1 as usize >= num_features || idx2 as usize >= num_features {
                        return Err(ErtFormatError::Malformed(format!(
                            "split reads feature {idx1}/{idx2} of {num_features}"
                        )));
                    }
                    splits.push(Split { idx1, idx2, thresh });
                }
                let num_leaves = read_len(input, 1 << 21, "num_leaves")?;
                if num_leaves != num_splits + 1 {
                    return Err(ErtFormatError::Malformed(format!(
                        "a tree with {num_splits} splits must have {} leaves, not {num_leaves}",
                        num_splits + 1
                    )));
                }
                let leaf_values = read_f32s(input, num_leaves * 2 * num_parts)?;
                trees.push(RegressionTree { splits, leaf_values });
            }
            cascades.push(Cascade { anchor_idx, deltas, trees });
        }
        Ok(ShapePredictorModel { initial_shape, cascades })
    }
}

fn write_u32(out: &mut impl Write, v: u32) -> std::io::Result<()> {
    out.write_all(&v.to_le_bytes())
}

fn write_f32s(out: &mut impl Write, vs: &[f32]) -> std::io::Result<()> {
    for v in vs {
        out.write_all(&v.to_le_bytes())?;
    }
    Ok(())
}

fn read_u32(input: &mut impl Read) -> Result<u32, ErtFormatError> {
    let mut b = [0u8; 4];
    input.read_exact(&mut b)?;
    Ok(u32::from_le_bytes(b))
}

fn read_len(input: &mut impl Read, max: usize, what: &str) -> Result<usize, ErtFormatError> {
    let v = read_u32(input)? as usize;
    if v > max {
        return Err(ErtFormatError::Malformed(format!("{what} = {v} exceeds {max}")));
    }
    Ok(v)
}

fn read_f32s(input: &mut impl Read, n: usize) -> Result<Vec<f32>, ErtFormatError> {
    let mut bytes = vec![0u8; n * 4];
    input.read_exact(&mut bytes)?;
    Ok(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_model() -> ShapePredictorModel {
        ShapePredictorModel {
            initial_shape: vec![0.2, 0.3, 0.8, 0.3],
            cascades: vec![Cascade {
                anchor_idx: vec![0, 1],
                deltas: vec![[0.01, -0.02], [0.0, 0.05]],
                trees: vec![RegressionTree {
                    splits: vec![Split { idx1: 0, idx2: 1, thresh: 3.5 }],
                    leaf_values: vec![0.1, 0.2, 0.3, 0.4, -0.1, -0.2, -0.3, -0.4],
                }],
            }],
        }
    }

    #[test]
    fn ert_round_trips() {
        let m = tiny_model();
        let mut buf = Vec::new();
        m.write(&mut buf).unwrap();
        assert_eq!(ShapePredictorModel::read(&mut buf.as_slice()).unwrap(), m);
    }

    #[test]
    fn truncated_or_corrupt_ert_is_refused() {
        let mut buf = Vec::new();
        tiny_model().write(&mut buf).unwrap();
        for cut in [0, 4, 8, 20, buf.len() - 1] {
            assert!(ShapePredictorModel::read(&mut &buf[..cut]).is_err(), "cut at {cut}");
        }
        let mut bad = buf.clone();
        bad[0] = b'X';
        assert!(matches!(ShapePredictorModel::read(&mut bad.as_slice()), Err(ErtFormatError::BadMagic)));
        // A split pointing past the feature list.
        let mut m = tiny_model();
        m.cascades[0].trees[0].splits[0].idx2 = 7;
        let mut buf = Vec::new();
        m.write(&mut buf).unwrap();
        assert!(matches!(ShapePredictorModel::read(&mut buf.as_slice()), Err(ErtFormatError::Malformed(_))));
    }
}
