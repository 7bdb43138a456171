//! The KV re-layout: copies cache rows between `[rows, heads, width, dim]` tensors,
//! right-aligned, padding zero. [`copy_row`] is the arithmetic on plain slices (unit-tested
//! without a model); [`relayout`] applies it to every layer's ONNX Runtime tensors.

use ort::value::{DynValue, PrimitiveTensorElementType, Tensor};

use super::state::Caches;
use crate::engine::layout::{DecoderLayout, KvDtype};
use crate::engine::ort_error;
use crate::engine::prefix_cache::KvData;
use crate::error::{Error, Result};

/// The shape of one cache tensor: `[rows, heads, width, dim]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct KvShape {
    /// Rows (generations).
    pub(super) rows: usize,
    /// KV heads.
    pub(super) heads: usize,
    /// Positions per row, padding included.
    pub(super) width: usize,
    /// Head size.
    pub(super) dim: usize,
}

impl KvShape {
    /// Elements of a tensor of this shape.
    pub(super) fn len(&self) -> usize {
        self.rows * self.heads * self.width * self.dim
    }
}

/// Copies the last `len` positions of row `row` of `src` (shape `src_shape`) into row
/// `out_row` of `out` (shape `out_shape`), right-aligned; the rest of that row is left as it
/// is (zero in a fresh buffer). Checks every bound first and copies nothing on error.
pub(super) fn copy_row<T: Copy>(
    src: &[T],
    src_shape: KvShape,
    row: usize,
    len: usize,
    out: &mut [T],
    out_shape: KvShape,
    out_row: usize,
) -> Result<()> {
    let (heads, dim) = (out_shape.heads, out_shape.dim);
    if row >= src_shape.rows
        || out_row >= out_shape.rows
        || src_shape.heads != heads
        || src_shape.dim != dim
        || len > src_shape.width
        || len > out_shape.width
        || src.len() != src_shape.len()
        || out.len() != out_shape.len()
    {
        return Err(Error::Runtime(format!(
            "a KV cache of shape {src_shape:?} does not hold row {row} of {len} positions for row {out_row} of {out_shape:?}"
        )));
    }
    for head in 0..heads {
        let end = ((row * heads + head) * src_shape.width + src_shape.width) * dim;
        let from = &src[end - len * dim..end];
        let out_end = ((out_row * heads + head) * out_shape.width + out_shape.width) * dim;
        out[out_end - len * dim..out_end].copy_from_slice(from);
    }
    Ok(())
}

/// Copies the positions of row `row` of `src` that `mask` keeps (`mask`: one entry per
/// position of the row's last `mask.len()`, 1 to keep; empty: keep the last `kept`) into row
/// `out_row` of `out`, right-aligned, holes dropped. Checks every bound first and copies
/// nothing on error.
#[allow(clippy::too_many_arguments)]
pub(super) fn copy_row_kept<T: Copy>(
    src: &[T],
    src_shape: KvShape,
    row: usize,
    mask: &[i64],
    kept: usize,
    out: &mut [T],
    out_shape: KvShape,
    out_row: usize,
) -> Result<()> {
    if mask.is_empty() {
        return copy_row(src, src_shape, row, kept, out, out_shape, out_row);
    }
    let ones = mask.iter().filter(|&&m| m != 0).count();
    if ones != kept
        || mask.len() > src_shape.width
        || row >= src_shape.rows
        || out_row >= out_shape.rows
        || src_shape.heads != out_shape.heads
        || src_shape.dim != out_shape.dim
        || kept > out_shape.width
        || src.len() != src_shape.len()
        || out.len() != out_shape.len()
    {
        return Err(Error::Runtime(format!(
            "a KV cache of shape {src_shape:?} does not hold row {row} with {kept} of {} positions kept for row {out_row} of {out_shape:?}",
            mask.len()
        )));
    }
    let (heads, dim) = (out_shape.heads, out_shape.dim);
    let first = src_shape.width - mask.len();
    for head in 0..heads {
        let src_base = (row * heads + head) * src_shape.width * dim;
        let out_end = ((out_row * heads + head) * out_shape.width + out_shape.width) * dim;
        let mut at = out_end - kept * dim;
        for (p, _) in mask.iter().enumerate().filter(|(_, &m)| m != 0) {
            let from = src_base + (first + p) * dim;
            out[at..at + dim].copy_from_slice(&src[from..from + dim]);
            at += dim;
        }
    }
    Ok(())
}

/// Builds `[rows.len(), heads, width, dim]` tensors (key and value per layer) from rows of
/// the `sources` caches: output row `i` takes row `rows[i].1` of `sources[rows[i].0]`, its
/// `lens[i]` kept positions (holes dropped), right-aligned; padding is zero.
pub(super) fn relayout(
    layout: &DecoderLayout,
    sources: &[Caches<DynValue>],
    rows: &[(usize, usize)],
    lens: &[usize],
    width: usize,
) -> Result<Vec<DynValue>> {
    for (&(s, r), &len) in rows.iter().zip(lens) {
        if sources[s].kept(r) != len {
            return Err(Error::Internal(format!(
                "a re-layout of {len} positions from a row that keeps {}",
                sources[s].kept(r)
            )));
        }
    }
    (0..layout.layers.len() * 2)
        .map(|k| {
            let parts: Vec<(&DynValue, usize, &[i64], usize)> = rows
                .iter()
                .zip(lens)
                .map(|(&(s, r), &len)| (&sources[s].kv[k], r, &sources[s].masks[r][..], len))
                .collect();
            match layout.kv_dtype {
                KvDtype::Float32 => {
                    copy_rows::<f32>(&parts, layout.kv_heads, layout.head_dim, width)
                }
                KvDtype::Float16 => {
                    copy_rows::<half::f16>(&parts, layout.kv_heads, layout.head_dim, width)
                }
            }
        })
        .collect()
}

/// Copies `(tensor, row, mask, kept)` parts right-aligned, holes dropped, into a zeroed
/// `[parts, heads, width, dim]`.
fn copy_rows<T: PrimitiveTensorElementType + Copy + Default + std::fmt::Debug + 'static>(
    parts: &[(&DynValue, usize, &[i64], usize)],
    heads: usize,
    dim: usize,
    width: usize,
) -> Result<DynValue> {
    let out_shape = KvShape {
        rows: parts.len(),
        heads,
        width,
        dim,
    };
    let mut data = vec![T::default(); out_shape.len()];
    for (out_row, &(value, row, mask, kept)) in parts.iter().enumerate() {
        let (src, src_shape) = tensor_data::<T>(value)?;
        copy_row_kept(
            src, src_shape, row, mask, kept, &mut data, out_shape, out_row,
        )?;
    }
    Ok(Tensor::from_array(([parts.len(), heads, width, dim], data))
        .map_err(ort_error("creating a batched KV cache"))?
        .into_dyn())
}

/// A cache tensor's elements and shape.
fn tensor_data<T: PrimitiveTensorElementType + 'static>(
    value: &DynValue,
) -> Result<(&[T], KvShape)> {
    let (shape, src) = value
        .try_extract_tensor::<T>()
        .map_err(ort_error("reading a KV cache"))?;
    let dims: Vec<usize> = shape.iter().map(|&d| d.max(0) as usize).collect();
    let [rows, heads, width, dim] = dims[..] else {
        return Err(Error::Runtime(format!("a KV cache of shape {shape:?}")));
    };
    Ok((
        src,
        KvShape {
            rows,
            heads,
            width,
            dim,
        },
    ))
}

/// Host copies (`[1, heads, len, dim]`, key and value per layer) of the `len` positions of
/// row `row` of `caches` that `mask` keeps (the row's own mask, or one with more holes; empty:
/// its last `len`): what the prefix cache keeps of a finished generation.
pub(super) fn row_to_host(
    layout: &DecoderLayout,
    caches: &Caches<DynValue>,
    row: usize,
    mask: &[i64],
    len: usize,
) -> Result<Vec<KvData>> {
    fn one<T: PrimitiveTensorElementType + Copy + Default + std::fmt::Debug + 'static>(
        value: &DynValue,
        row: usize,
        mask: &[i64],
        len: usize,
        heads: usize,
        dim: usize,
    ) -> Result<Vec<T>> {
        let out_shape = KvShape {
            rows: 1,
            heads,
            width: len,
            dim,
        };
        let mut data = vec![T::default(); out_shape.len()];
        let (src, src_shape) = tensor_data::<T>(value)?;
        copy_row_kept(src, src_shape, row, mask, len, &mut data, out_shape, 0)?;
        Ok(data)
    }
    let (heads, dim) = (layout.kv_heads, layout.head_dim);
    caches
        .kv
        .iter()
        .map(|value| {
            Ok(match layout.kv_dtype {
                KvDtype::Float32 => KvData::F32(one::<f32>(value, row, mask, len, heads, dim)?),
                KvDtype::Float16 => {
                    KvData::F16(one::<half::f16>(value, row, mask, len, heads, dim)?)
                }
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(rows: usize, heads: usize, width: usize, dim: usize) -> KvShape {
        KvShape {
            rows,
            heads,
            width,
            dim,
        }
    }

    /// Element (row, head, pos, d) = row*1000 + head*100 + pos*10 + d + 1 (never zero).
    fn numbered(s: KvShape) -> Vec<u32> {
        let mut v = Vec::with_capacity(s.len());
        for r in 0..s.rows {
            for h in 0..s.heads {
                for p in 0..s.width {
                    for d in 0..s.dim {
                        v.push((r * 1000 + h * 100 + p * 10 + d + 1) as u32);
                    }
                }
            }
        }
        v
    }

    #[test]
    fn a_row_is_right_aligned_with_zero_padding_on_the_left() {
        let src_shape = shape(2, 2, 3, 2);
        let src = numbered(src_shape);
        let out_shape = shape(1, 2, 5, 2);
        let mut out = vec![0u32; out_shape.len()];
        // Row 1's last 2 positions (its first is left padding in the source).
        copy_row(&src, src_shape, 1, 2, &mut out, out_shape, 0).unwrap();
        let head = |h: usize| &out[h * 10..h * 10 + 10];
        let want = |h: u32| {
            let p = |pos: u32, d: u32| 1000 + h * 100 + pos * 10 + d + 1;
            [0, 0, 0, 0, 0, 0, p(1, 0), p(1, 1), p(2, 0), p(2, 1)]
        };
        assert_eq!(head(0), want(0));
        assert_eq!(head(1), want(1));
    }

    #[test]
    fn rows_from_several_sources_keep_their_own_positions() {
        let a_shape = shape(1, 1, 4, 1);
        let a = numbered(a_shape);
        let b_shape = shape(3, 1, 2, 1);
        let b = numbered(b_shape);
        let out_shape = shape(2, 1, 4, 1);
        let mut out = vec![0u32; out_shape.len()];
        copy_row(&a, a_shape, 0, 4, &mut out, out_shape, 0).unwrap();
        copy_row(&b, b_shape, 2, 2, &mut out, out_shape, 1).unwrap();
        assert_eq!(out, [1, 11, 21, 31, 0, 0, 2001, 2011]);
    }

    #[test]
    fn holes_are_dropped_and_the_kept_positions_right_aligned() {
        // Row 1 of a [2, 2, 4, 1] cache holds 3 positions (1..4), the middle one a hole.
        let src_shape = shape(2, 2, 4, 1);
        let src = numbered(src_shape);
        let out_shape = shape(1, 2, 3, 1);
        let mut out = vec![0u32; out_shape.len()];
        copy_row_kept(&src, src_shape, 1, &[1, 0, 1], 2, &mut out, out_shape, 0).unwrap();
        assert_eq!(out, [0, 1011, 1031, 0, 1111, 1131]);
        // The mask must keep what it says, within the row.
        for (mask, kept) in [(&[1, 0, 1][..], 3), (&[1, 1, 1, 1, 1][..], 5)] {
            let mut fresh = vec![0u32; out_shape.len()];
            assert!(
                copy_row_kept(&src, src_shape, 1, mask, kept, &mut fresh, out_shape, 0).is_err()
            );
            assert!(fresh.iter().all(|&x| x == 0));
        }
    }

    #[test]
    fn out_of_bounds_copies_are_refused_and_write_nothing() {
        let src_shape = shape(1, 2, 3, 2);
        let src = numbered(src_shape);
        let out_shape = shape(1, 2, 2, 2);
        let mut out = vec![0u32; out_shape.len()];
        for (row, len, out_row) in [(1, 1, 0), (0, 4, 0), (0, 3, 0), (0, 1, 1)] {
            assert!(copy_row(&src, src_shape, row, len, &mut out, out_shape, out_row).is_err());
        }
        let heads_differ = shape(1, 1, 2, 2);
        let mut small = vec![0u32; heads_differ.len()];
        assert!(copy_row(&src, src_shape, 0, 1, &mut small, heads_differ, 0).is_err());
        assert!(copy_row(&src[1..], src_shape, 0, 1, &mut out, out_shape, 0).is_err());
        assert!(out.iter().all(|&x| x == 0));
    }
}
