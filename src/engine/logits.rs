//! Reading logits out of a run: row `r`'s last-position logits (or its last few
//! positions') as float32, from float32 or float16 outputs of shape `[rows, steps, vocab]`.
//! Used by the single-sequence forward pass, the batched step and scoring.

use ort::value::{DynValue, TensorElementType};

use super::ort_error;
use crate::error::{Error, Result};

/// The slice of `data` (shape `shape`, `[rows, steps, vocab]`) holding row `row`'s last
/// `count` positions (`count × vocab` values, in position order), or `None` when the shape
/// does not have that row or that many positions, or is not 3-dimensional.
pub(super) fn last_positions<'d, T>(
    shape: &[i64],
    data: &'d [T],
    row: usize,
    count: usize,
) -> Option<&'d [T]> {
    let [rows, steps, vocab] = shape[..] else {
        return None;
    };
    let (rows, steps, vocab) = (
        usize::try_from(rows).ok()?,
        usize::try_from(steps).ok()?,
        usize::try_from(vocab).ok()?,
    );
    if vocab == 0
        || count == 0
        || count > steps
        || row >= rows
        || data.len() != rows * steps * vocab
    {
        return None;
    }
    let end = (row + 1) * steps * vocab;
    Some(&data[end - count * vocab..end])
}

/// Row `row` of `[rows, steps, vocab]` logits, last position, as float32 into `out`.
/// Returns the vocabulary width.
pub(super) fn row_logits(logits: &DynValue, row: usize, out: &mut Vec<f32>) -> Result<usize> {
    row_last_logits(logits, row, 1, out)
}

/// Row `row` of `[rows, steps, vocab]` logits, its last `count` positions (in order), as
/// float32 into `out` (`count × vocab` values). Returns the vocabulary width.
pub(super) fn row_last_logits(
    logits: &DynValue,
    row: usize,
    count: usize,
    out: &mut Vec<f32>,
) -> Result<usize> {
    macro_rules! take {
        ($t:ty, $convert:expr) => {{
            let (shape, data) = logits
                .try_extract_tensor::<$t>()
                .map_err(ort_error("reading logits"))?;
            let dims: Vec<i64> = shape.iter().copied().collect();
            let Some(last) = last_positions(&dims, data, row, count) else {
                return Err(Error::Runtime(format!(
                    "logits of shape {dims:?} have no last {count} position(s) of row {row} of [rows, steps, vocab]"
                )));
            };
            out.clear();
            out.extend(last.iter().map($convert));
            Ok(last.len() / count)
        }};
    }
    match logits.dtype() {
        ort::value::ValueType::Tensor {
            ty: TensorElementType::Float32,
            ..
        } => take!(f32, |&v| v),
        ort::value::ValueType::Tensor {
            ty: TensorElementType::Float16,
            ..
        } => take!(half::f16, |v: &half::f16| v.to_f32()),
        other => Err(Error::Runtime(format!(
            "logits have unsupported type {other:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last_position<'d, T>(shape: &[i64], data: &'d [T], row: usize) -> Option<&'d [T]> {
        last_positions(shape, data, row, 1)
    }

    #[test]
    fn the_last_positions_of_a_row_in_order() {
        let data: Vec<i32> = (0..2)
            .flat_map(|r| (0..3).flat_map(move |s| (0..2).map(move |v| r * 100 + s * 10 + v)))
            .collect();
        assert_eq!(
            last_positions(&[2, 3, 2], &data, 1, 2),
            Some(&[110, 111, 120, 121][..])
        );
        assert_eq!(
            last_positions(&[2, 3, 2], &data, 0, 3).map(<[_]>::len),
            Some(6)
        );
        assert_eq!(
            last_positions(&[2, 3, 2], &data, 0, 4),
            None,
            "only 3 positions"
        );
        assert_eq!(
            last_positions(&[2, 3, 2], &data, 0, 0),
            None,
            "no positions"
        );
    }

    #[test]
    fn the_last_position_of_each_row() {
        // [2 rows, 3 steps, vocab 2]: element = row*100 + step*10 + v
        let data: Vec<i32> = (0..2)
            .flat_map(|r| (0..3).flat_map(move |s| (0..2).map(move |v| r * 100 + s * 10 + v)))
            .collect();
        assert_eq!(last_position(&[2, 3, 2], &data, 0), Some(&[20, 21][..]));
        assert_eq!(last_position(&[2, 3, 2], &data, 1), Some(&[120, 121][..]));
    }

    #[test]
    fn shapes_that_do_not_hold_the_row_are_refused() {
        let data = vec![0f32; 12];
        assert_eq!(
            last_position(&[2, 3, 2], &data, 2),
            None,
            "row out of range"
        );
        assert_eq!(
            last_position(&[2, 3, 3], &data, 0),
            None,
            "data shorter than the shape"
        );
        assert_eq!(last_position(&[12, 1], &data, 0), None, "not 3-dimensional");
        assert_eq!(
            last_position(&[2, 6, 0], &data[..0], 0),
            None,
            "empty vocabulary"
        );
        assert_eq!(
            last_position(&[-1, 3, 2], &data, 0),
            None,
            "negative dimension"
        );
    }
}
