//! Safetensors files with a canonical header, so the same tensors and metadata always give the
//! same bytes.
//!
//! The `safetensors` crate takes the `__metadata__` map as a `HashMap` and writes it in hash
//! order, which changes from one map to the next: two saves of one state differ byte for byte.
//! [`serialize`] writes through that crate and then rewrites the header with the metadata
//! sorted by key; tensor entries keep the crate's order (by dtype alignment, then name) and the
//! data is unchanged. It lives here, the lowest crate that both `strata-nn-layers` and
//! `strata-optim` build on, so that every safetensors file Strata writes goes through it.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Display;

use safetensors::{SafeTensorError, SafeTensors, View};

/// Bytes of the little-endian header length that opens a safetensors file.
const LEN_BYTES: usize = 8;

const JSON: &str = "bug: strings, string maps and tensor infos encode as JSON";

/// Serialises `tensors` (name, view) and string `metadata` as the bytes of a safetensors file
/// whose header is canonical: `__metadata__` first with its keys sorted, then one entry per
/// tensor in data order, padded with spaces to a multiple of 8 bytes.
///
/// Empty `metadata` writes no `__metadata__` entry. Readers of the format (this crate's
/// `safetensors` dependency, Python's `safetensors.torch.load_file`) accept the file as usual.
///
/// # Errors
/// The `safetensors` crate's error if it refuses the tensors (a view whose byte count does
/// not match its shape, a header over its size limit).
///
/// ```
/// use std::collections::BTreeMap;
///
/// use safetensors::tensor::{Dtype, TensorView};
/// use strata_autograd::safetensors_file::serialize;
///
/// let data = 1.5f32.to_le_bytes();
/// let view = TensorView::new(Dtype::F32, vec![1], &data)?;
/// let metadata = BTreeMap::from([("b".to_string(), "2".to_string()), ("a".into(), "1".into())]);
/// let bytes = serialize([("w", view)], &metadata)?;
/// let header = std::str::from_utf8(&bytes[8..bytes.len() - 4])?;
/// assert!(header.starts_with(r#"{"__metadata__":{"a":"1","b":"2"},"w":"#));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn serialize<S, V, I>(
    tensors: I,
    metadata: &BTreeMap<String, String>,
) -> Result<Vec<u8>, SafeTensorError>
where
    S: AsRef<str> + Ord + Display,
    V: View,
    I: IntoIterator<Item = (S, V)>,
{
    let hashed: Option<HashMap<String, String>> =
        (!metadata.is_empty()).then(|| metadata.clone().into_iter().collect());
    let bytes = safetensors::serialize(tensors, hashed)?;
    Ok(canonical_header(bytes))
}

/// Rewrites the header of safetensors `bytes` (as the `safetensors` crate wrote them) in the
/// canonical form [`serialize`] documents; the data after the header is unchanged.
fn canonical_header(bytes: Vec<u8>) -> Vec<u8> {
    let (header_len, header) =
        SafeTensors::read_metadata(&bytes).expect("bug: safetensors reads back what it wrote");
    let mut json = String::from("{");
    if let Some(metadata) = header.metadata() {
        let sorted: BTreeMap<&String, &String> = metadata.iter().collect();
        json.push_str("\"__metadata__\":");
        json.push_str(&serde_json::to_string(&sorted).expect(JSON));
    }
    for name in header.offset_keys() {
        let info = header
            .info(&name)
            .expect("bug: offset_keys lists known tensors");
        if json.len() > 1 {
            json.push(',');
        }
        json.push_str(&serde_json::to_string(&name).expect(JSON));
        json.push(':');
        json.push_str(&serde_json::to_string(info).expect(JSON));
    }
    json.push('}');

    let mut header_bytes = json.into_bytes();
    header_bytes.resize(header_bytes.len().next_multiple_of(LEN_BYTES), b' ');
    let data = &bytes[LEN_BYTES + header_len..];
    let mut out = Vec::with_capacity(LEN_BYTES + header_bytes.len() + data.len());
    out.extend_from_slice(&(header_bytes.len() as u64).to_le_bytes());
    out.extend_from_slice(&header_bytes);
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use safetensors::tensor::{Dtype, TensorView};

    use super::*;

    fn metadata(n: usize) -> BTreeMap<String, String> {
        (0..n).map(|i| (format!("key{i}"), i.to_string())).collect()
    }

    fn encode(metadata: &BTreeMap<String, String>) -> Vec<u8> {
        let w: Vec<u8> = [0.5f32, -1.0, 2.0]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let step = 7i64.to_le_bytes();
        let views = [
            ("w", TensorView::new(Dtype::F32, vec![3], &w).unwrap()),
            ("step", TensorView::new(Dtype::I64, vec![], &step).unwrap()),
        ];
        serialize(views, metadata).unwrap()
    }

    fn header_text(bytes: &[u8]) -> &str {
        let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        std::str::from_utf8(&bytes[8..8 + len]).unwrap()
    }

    /// Regression: the `__metadata__` map went out in `HashMap` order, so serialising the
    /// same tensors and metadata twice gave different bytes.
    #[test]
    fn same_tensors_and_metadata_give_the_same_bytes_with_sorted_metadata() {
        let meta = metadata(8);

        let files: Vec<Vec<u8>> = (0..8).map(|_| encode(&meta)).collect();

        assert!(files.windows(2).all(|w| w[0] == w[1]));
        let header = header_text(&files[0]);
        let positions: Vec<usize> = (0..8)
            .map(|i| header.find(&format!("\"key{i}\"")).unwrap())
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{header}");
    }

    #[test]
    fn canonical_bytes_still_load_with_tensors_and_metadata() {
        let bytes = encode(&metadata(3));

        let file = SafeTensors::deserialize(&bytes).unwrap();
        let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();

        assert_eq!(
            header_text(&bytes).len() % 8,
            0,
            "the data stays 8-byte aligned"
        );
        assert_eq!(file.tensor("w").unwrap().shape(), &[3]);
        assert_eq!(file.tensor("step").unwrap().data(), 7i64.to_le_bytes());
        let meta: BTreeMap<String, String> =
            header.metadata().clone().unwrap().into_iter().collect();
        assert_eq!(meta, metadata(3));
    }

    #[test]
    fn a_single_key_header_is_what_safetensors_writes() {
        let meta = metadata(1);
        let data = [1u8, 2, 3, 4];
        let view = || TensorView::new(Dtype::U8, vec![2, 2], &data).unwrap();

        let ours = serialize([("a", view())], &meta).unwrap();
        let theirs =
            safetensors::serialize([("a", view())], Some(meta.into_iter().collect())).unwrap();

        assert_eq!(ours, theirs);
    }

    #[test]
    fn empty_metadata_writes_no_metadata_entry() {
        let bytes = encode(&BTreeMap::new());

        let header = header_text(&bytes);

        assert!(!header.contains("__metadata__"), "{header}");
        assert!(header.starts_with(r#"{"step":{"dtype":"I64""#), "{header}");
    }

    #[test]
    fn no_tensors_and_no_metadata_is_an_empty_header() {
        let bytes = serialize(Vec::<(&str, TensorView)>::new(), &BTreeMap::new()).unwrap();

        assert_eq!(header_text(&bytes).trim_end(), "{}");
        assert!(SafeTensors::deserialize(&bytes).unwrap().is_empty());
    }
}
