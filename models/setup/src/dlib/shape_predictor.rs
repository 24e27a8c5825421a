//! Converts dlib's `shape_predictor` (an ensemble of regression trees, as in
//! `shape_predictor_5_face_landmarks.dat`) into our [`ShapePredictorModel`], which the
//! runtime stores in its own `.ert` format.
//!
//! dlib writes (`dlib/image_processing/shape_predictor.h`): a version (1), the mean shape
//! as a column `matrix<float>`, the forests (per cascade, a vector of trees; each tree is
//! its split features `(idx1, idx2, thresh)` breadth-first and one `matrix<float>` shape
//! update per leaf), then per cascade the anchor landmark of each feature pixel and its
//! offset `(dx, dy)`. Everything dlib's own loader assumes is checked here instead: every
//! index in range, complete trees, and one anchor and offset per feature pixel.

use models::landmarks::{Cascade, RegressionTree, ShapePredictorModel, Split};

use super::serialize::{DlibError, Reader, Result, MIN_FLOAT_BYTES, MIN_INT_BYTES};

/// Parses the bytes of a dlib `shape_predictor` file.
pub fn convert_shape_predictor(dat: &[u8]) -> anyhow::Result<ShapePredictorModel> {
    Ok(parse(dat)?)
}

/// [`convert_shape_predictor`] with the typed error.
pub fn parse(dat: &[u8]) -> Result<ShapePredictorModel> {
    let mut r = Reader::new(dat);
    let version = r.i64("shape_predictor version")?;
    if version != 1 {
        return Err(r.unsupported(format!("shape_predictor version {version} (only 1 exists)")));
    }

    let (rows, cols, initial_shape) = r.matrix_f32("initial_shape")?;
    if cols != 1 || rows == 0 || rows % 2 != 0 {
        return Err(r.malformed(format!(
            "initial_shape is {rows}x{cols}, expected a 2*parts x 1 column"
        )));
    }
    let dims = rows;
    let num_parts = dims / 2;

    // Forests: cascades -> trees.
    let num_cascades = r.len(MIN_INT_BYTES, "number of cascades")?;
    let mut forests = Vec::with_capacity(num_cascades);
    for c in 0..num_cascades {
        let num_trees = r.len(2 * MIN_INT_BYTES, "number of trees")?;
        let mut trees = Vec::with_capacity(num_trees);
        for t in 0..num_trees {
            trees.push(read_tree(&mut r, dims).map_err(|e| context(e, c, t))?);
        }
        forests.push(trees);
    }

    let anchors_cascades = r.len(MIN_INT_BYTES, "anchor_idx cascades")?;
    let mut anchors = Vec::with_capacity(anchors_cascades);
    for _ in 0..anchors_cascades {
        let n = r.len(MIN_INT_BYTES, "anchor_idx")?;
        let mut a = Vec::with_capacity(n);
        for _ in 0..n {
            let idx = r.usize("anchor index")?;
            if idx >= num_parts {
                return Err(r.malformed(format!("anchor landmark {idx} >= {num_parts} parts")));
            }
            a.push(idx as u32);
        }
        anchors.push(a);
    }

    let deltas_cascades = r.len(MIN_INT_BYTES, "deltas cascades")?;
    let mut deltas = Vec::with_capacity(deltas_cascades);
    for _ in 0..deltas_cascades {
        let n = r.len(2 * MIN_FLOAT_BYTES, "deltas")?;
        let mut d = Vec::with_capacity(n);
        for _ in 0..n {
            d.push([r.f32("delta x")?, r.f32("delta y")?]);
        }
        deltas.push(d);
    }
    r.expect_end("the shape predictor")?;

    if anchors.len() != forests.len() || deltas.len() != forests.len() {
        return Err(r.malformed(format!(
            "{} forests but {} anchor lists and {} delta lists",
            forests.len(),
            anchors.len(),
            deltas.len()
        )));
    }
    let mut cascades = Vec::with_capacity(forests.len());
    for (c, ((trees, anchor_idx), deltas)) in
        forests.into_iter().zip(anchors).zip(deltas).enumerate()
    {
        if anchor_idx.len() != deltas.len() {
            return Err(r.malformed(format!(
                "cascade {c}: {} anchors but {} offsets",
                anchor_idx.len(),
                deltas.len()
            )));
        }
        let num_features = anchor_idx.len();
        for (t, tree) in trees.iter().enumerate() {
            if let Some(s) = tree
                .splits
                .iter()
                .find(|s| s.idx1 as usize >= num_features || s.idx2 as usize >= num_features)
            {
                return Err(r.malformed(format!(
                    "cascade {c} tree {t}: split reads feature {}/{} of {num_features}",
                    s.idx1, s.idx2
                )));
            }
        }
        cascades.push(Cascade {
            anchor_idx,
            deltas,
            trees,
        });
    }
    Ok(ShapePredictorModel {
        initial_shape,
        cascades,
    })
}

fn read_tree(r: &mut Reader<'_>, dims: usize) -> Result<RegressionTree> {
    let num_splits = r.len(MIN_INT_BYTES * 2 + MIN_FLOAT_BYTES, "number of splits")?;
    let mut splits = Vec::with_capacity(num_splits);
    for _ in 0..num_splits {
        let idx1 = r.u64("split idx1")?;
        let idx2 = r.u64("split idx2")?;
        let thresh = r.f32("split threshold")?;
        let (idx1, idx2) = match (u32::try_from(idx1), u32::try_from(idx2)) {
            (Ok(a), Ok(b)) => (a, b),
            _ => return Err(r.malformed(format!("split feature index {idx1}/{idx2} out of range"))),
        };
        splits.push(Split { idx1, idx2, thresh });
    }
    let num_leaves = r.len(2 * MIN_INT_BYTES, "number of leaves")?;
    // dlib walks a tree as a complete binary tree (children of i at 2i+1, 2i+2) and
    // indexes leaves from the number of splits, so anything else would read past the end.
    if num_leaves != num_splits + 1 || !num_leaves.is_power_of_two() {
        return Err(r.malformed(format!(
            "a complete tree with {num_splits} splits cannot have {num_leaves} leaves"
        )));
    }
    let mut leaf_values = Vec::with_capacity(num_leaves * dims);
    for _ in 0..num_leaves {
        let (rows, cols, values) = r.matrix_f32("leaf value")?;
        if rows != dims || cols != 1 {
            return Err(r.malformed(format!("leaf update is {rows}x{cols}, expected {dims}x1")));
        }
        leaf_values.extend(values);
    }
    Ok(RegressionTree {
        splits,
        leaf_values,
    })
}

fn context(e: DlibError, cascade: usize, tree: usize) -> DlibError {
    match e {
        DlibError::Malformed { offset, reason } => DlibError::Malformed {
            offset,
            reason: format!("cascade {cascade} tree {tree}: {reason}"),
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::super::serialize::tests::{float, int};
    use super::*;

    fn tiny_dat() -> Vec<u8> {
        tiny_dat_with(1, 1)
    }

    /// A one-cascade, one-tree, two-landmark predictor in dlib's format, with a chosen
    /// second anchor and second split index (to make broken variants).
    fn tiny_dat_with(anchor2: i64, split_idx2: i64) -> Vec<u8> {
        let mut b = int(1);
        // initial_shape: 4x1, new format (negated sizes).
        b.extend(int(-4));
        b.extend(int(-1));
        for v in [0.25f32, 0.375, 0.75, 0.375] {
            b.extend(float(v));
        }
        // forests: 1 cascade of 1 tree with 1 split and 2 leaves.
        b.extend(int(1));
        b.extend(int(1));
        b.extend(int(1));
        b.extend(int(0));
        b.extend(int(split_idx2));
        b.extend(float(12.5));
        b.extend(int(2));
        for leaf in [[0.5f32, -0.5, 1.0, -1.0], [0.125, 0.25, -0.125, -0.25]] {
            b.extend(int(-4));
            b.extend(int(-1));
            for v in leaf {
                b.extend(float(v));
            }
        }
        // anchor_idx: 1 cascade, 2 features.
        b.extend(int(1));
        b.extend(int(2));
        b.extend(int(0));
        b.extend(int(anchor2));
        // deltas: 1 cascade, 2 features.
        b.extend(int(1));
        b.extend(int(2));
        for v in [0.0625f32, -0.03125, 0.0, 0.5] {
            b.extend(float(v));
        }
        b
    }

    #[test]
    fn parses_a_small_predictor() {
        let m = parse(&tiny_dat()).unwrap();
        assert_eq!(m.initial_shape, vec![0.25, 0.375, 0.75, 0.375]);
        assert_eq!(m.num_parts(), 2);
        let c = &m.cascades[0];
        assert_eq!(c.anchor_idx, vec![0, 1]);
        assert_eq!(c.deltas, vec![[0.0625, -0.03125], [0.0, 0.5]]);
        assert_eq!(
            c.trees[0].splits,
            vec![Split {
                idx1: 0,
                idx2: 1,
                thresh: 12.5
            }]
        );
        assert_eq!(
            c.trees[0].leaf_values,
            vec![0.5, -0.5, 1.0, -1.0, 0.125, 0.25, -0.125, -0.25]
        );
        // And it survives our own .ert format.
        let mut ert = Vec::new();
        m.write(&mut ert).unwrap();
        assert_eq!(ShapePredictorModel::read(&mut ert.as_slice()).unwrap(), m);
    }

    #[test]
    fn every_truncation_is_an_error() {
        let dat = tiny_dat();
        for cut in 0..dat.len() {
            assert!(parse(&dat[..cut]).is_err(), "cut at {cut}");
        }
        let mut long = dat.clone();
        long.push(0);
        assert!(parse(&long).is_err());
    }

    #[test]
    fn out_of_range_indices_are_refused() {
        assert!(parse(&tiny_dat_with(1, 1)).is_ok());
        // Anchor landmark 2 of 2 parts.
        let e = parse(&tiny_dat_with(2, 1)).unwrap_err();
        assert!(matches!(e, DlibError::Malformed { .. }), "{e}");
        // A split reading feature 5 of 2.
        let e = parse(&tiny_dat_with(1, 5)).unwrap_err();
        assert!(matches!(e, DlibError::Malformed { .. }), "{e}");
        // Another version.
        let mut dat = tiny_dat();
        dat[1] = 2;
        assert!(matches!(parse(&dat), Err(DlibError::Unsupported { .. })));
    }
}
