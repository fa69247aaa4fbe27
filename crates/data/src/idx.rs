//! Reader for IDX files, the format of MNIST and Fashion-MNIST.
//!
//! An IDX file is a big-endian header followed by the array in row-major order:
//!
//! ```text
//! magic: u32    0x00000803 for u8 images [n, rows, cols], 0x00000801 for u8 labels [n]
//!               (bytes: 0, 0, element type 0x08 = unsigned byte, number of dimensions)
//! dims:  u32 x number of dimensions
//! data:  product(dims) bytes
//! ```
//!
//! Files may be gzipped; gzip is recognised by its magic bytes `1f 8b`, whatever the file name.
//! The reader checks the magic number, the dimensions and that the data length matches the
//! header exactly. It never allocates more than the bytes actually present: the size computed
//! from the header is compared with the file length (or with the bytes a gzip stream really
//! yields) before any buffer of that size is made, so a corrupt header claiming billions of
//! images fails fast with [`DataError::Length`].

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use flate2::read::MultiGzDecoder;

use crate::error::{DataError, Result};
use crate::fsutil::io_error;

/// Magic number of an IDX file of unsigned-byte images `[n, rows, cols]`.
pub const IMAGES_MAGIC: u32 = 0x0000_0803;

/// Magic number of an IDX file of unsigned-byte labels `[n]`.
pub const LABELS_MAGIC: u32 = 0x0000_0801;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The operation of [`read_images`] and [`read_labels`], as error messages name it (the
/// message of [`DataError::BadMagic`] says the same).
const READ: &str = "reading an IDX file";

/// Greyscale images read from an IDX file: `len()` images of `rows x cols` bytes each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxImages {
    count: usize,
    rows: usize,
    cols: usize,
    pixels: Vec<u8>,
}

impl IdxImages {
    /// Builds images from raw pixels in row-major `[count, rows, cols]` order.
    ///
    /// # Errors
    /// [`DataError::InvalidArgument`] if `pixels.len()` differs from `count * rows * cols`.
    pub fn new(count: usize, rows: usize, cols: usize, pixels: Vec<u8>) -> Result<Self> {
        let expected = count.checked_mul(rows).and_then(|n| n.checked_mul(cols));
        if expected != Some(pixels.len()) {
            return Err(DataError::InvalidArgument {
                op: "building IDX images",
                reason: format!(
                    "{} pixels cannot form {count} images of {rows}x{cols}",
                    pixels.len()
                ),
            });
        }
        Ok(Self {
            count,
            rows,
            cols,
            pixels,
        })
    }

    /// The number of images.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The height of each image.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The width of each image.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// All pixels, row-major `[len, rows, cols]`, 0 = background.
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// The pixels of image `index`, row-major `[rows, cols]`.
    ///
    /// # Panics
    /// If `index >= self.len()`.
    pub fn image(&self, index: usize) -> &[u8] {
        assert!(
            index < self.count,
            "IdxImages::image: index {index} out of range for {}",
            self.count
        );
        let size = self.rows * self.cols;
        &self.pixels[index * size..(index + 1) * size]
    }
}

/// Reads an IDX file of `u8` images `[n, rows, cols]` (magic `0x00000803`), raw or gzipped.
///
/// # Errors
/// - [`DataError::Io`] if the file cannot be opened or read;
/// - [`DataError::BadMagic`] if it does not start with `0x00000803`;
/// - [`DataError::Corrupt`] if the header is cut short, an image has a zero side, the sizes
///   overflow, or the gzip stream is broken;
/// - [`DataError::Length`] if the data is shorter or longer than the header says.
pub fn read_images(path: impl AsRef<Path>) -> Result<IdxImages> {
    let path = path.as_ref();
    let (dims, pixels) = read_u8_idx(path, IMAGES_MAGIC, "u8 images [n, rows, cols]")?;
    let [count, rows, cols] = dims[..] else {
        unreachable!("bug: the magic number fixes three dimensions");
    };
    if rows == 0 || cols == 0 {
        return Err(corrupt(
            path,
            format!("images of {rows}x{cols} pixels have no area"),
        ));
    }
    // `read_u8_idx` checked that the product fits in the bytes read, so each factor fits usize.
    Ok(IdxImages {
        count: count as usize,
        rows: rows as usize,
        cols: cols as usize,
        pixels,
    })
}

/// Reads an IDX file of `u8` labels `[n]` (magic `0x00000801`), raw or gzipped.
///
/// # Errors
/// As [`read_images`], with `0x00000801` as the expected magic number.
pub fn read_labels(path: impl AsRef<Path>) -> Result<Vec<u8>> {
    let (_, labels) = read_u8_idx(path.as_ref(), LABELS_MAGIC, "u8 labels [n]")?;
    Ok(labels)
}

/// Reads the header and data of an IDX file whose magic number must be `magic`.
fn read_u8_idx(path: &Path, magic: u32, kind: &'static str) -> Result<(Vec<u64>, Vec<u8>)> {
    let ndim = (magic & 0xff) as usize;
    let header_len = 4 + 4 * ndim as u64;
    let (mut reader, file_len) = open_payload(path)?;
    let gzipped = file_len.is_none();

    let mut header = vec![0u8; header_len as usize];
    read_exact_or(
        &mut reader,
        &mut header[..4],
        path,
        gzipped,
        "the magic number",
    )?;
    let found = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    if found != magic {
        return Err(DataError::BadMagic {
            path: path.to_path_buf(),
            expected: magic,
            found,
            kind,
        });
    }
    read_exact_or(
        &mut reader,
        &mut header[4..],
        path,
        gzipped,
        "the dimensions",
    )?;
    let dims: Vec<u64> = header[4..]
        .chunks_exact(4)
        .map(|b| u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]])))
        .collect();
    let expected = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| corrupt(path, format!("dimensions {dims:?} overflow a 64-bit size")))?;

    let data = match file_len {
        Some(len) => {
            let actual = len.saturating_sub(header_len);
            read_raw_data(&mut reader, path, &dims, expected, actual)?
        }
        None => read_gzip_data(&mut reader, path, &dims, expected)?,
    };
    Ok((dims, data))
}

/// Opens `path` and returns a reader over its decompressed contents, with the file length when
/// the file is not gzipped.
fn open_payload(path: &Path) -> Result<(Box<dyn Read>, Option<u64>)> {
    let mut file = File::open(path).map_err(io_error(READ, path))?;
    let mut start = [0u8; 2];
    let peeked = read_up_to(&mut file, &mut start).map_err(io_error(READ, path))?;
    file.seek(SeekFrom::Start(0))
        .map_err(io_error(READ, path))?;

    if peeked == 2 && start == GZIP_MAGIC {
        let decoder = MultiGzDecoder::new(BufReader::new(file));
        Ok((Box::new(BufReader::new(decoder)), None))
    } else {
        let len = file.metadata().map_err(io_error(READ, path))?.len();
        Ok((Box::new(BufReader::new(file)), Some(len)))
    }
}

/// Reads the data of an uncompressed file whose remaining length is known, checking the length
/// before allocating.
fn read_raw_data(
    reader: &mut dyn Read,
    path: &Path,
    dims: &[u64],
    expected: u64,
    actual: u64,
) -> Result<Vec<u8>> {
    if actual != expected {
        return Err(length_error(path, dims, expected, actual));
    }
    let len = usize::try_from(expected)
        .map_err(|_| corrupt(path, format!("{expected} bytes do not fit in memory")))?;
    let mut data = vec![0u8; len];
    reader.read_exact(&mut data).map_err(io_error(READ, path))?;
    Ok(data)
}

/// Reads the data of a gzip stream, whose decompressed length is only known by reading it. The
/// buffer grows with the bytes received, never to the size the header claims up front.
fn read_gzip_data(
    reader: &mut dyn Read,
    path: &Path,
    dims: &[u64],
    expected: u64,
) -> Result<Vec<u8>> {
    let gzip_error = |source: io::Error| gzip_error(path, source);
    let mut data = Vec::new();
    reader
        .take(expected)
        .read_to_end(&mut data)
        .map_err(gzip_error)?;
    let received = data.len() as u64;
    if received < expected {
        return Err(length_error(path, dims, expected, received));
    }
    let trailing = io::copy(reader, &mut io::sink()).map_err(gzip_error)?;
    if trailing > 0 {
        return Err(length_error(path, dims, expected, expected + trailing));
    }
    Ok(data)
}

/// Fills `buf` from the reader, or reports that the file ends inside `what`.
fn read_exact_or(
    reader: &mut dyn Read,
    buf: &mut [u8],
    path: &Path,
    gzipped: bool,
    what: &str,
) -> Result<()> {
    let got = read_up_to(reader, buf).map_err(|source| {
        if gzipped {
            gzip_error(path, source)
        } else {
            io_error(READ, path)(source)
        }
    })?;
    if got < buf.len() {
        return Err(corrupt(
            path,
            format!("the file ends inside {what} of the header"),
        ));
    }
    Ok(())
}

/// Reads until `buf` is full or the stream ends, returning the number of bytes read.
fn read_up_to(reader: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn corrupt(path: &Path, reason: String) -> DataError {
    DataError::Corrupt {
        op: READ,
        path: path.to_path_buf(),
        reason,
    }
}

fn gzip_error(path: &Path, source: io::Error) -> DataError {
    corrupt(path, format!("broken gzip stream: {source}"))
}

fn length_error(path: &Path, dims: &[u64], expected: u64, actual: u64) -> DataError {
    DataError::Length {
        op: READ,
        path: path.to_path_buf(),
        shape: dims.to_vec(),
        expected,
        actual,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::Write;

    use flate2::write::GzEncoder;
    use flate2::Compression;

    use super::*;

    /// The bytes of an IDX file with the given magic number, dimensions and data.
    pub(crate) fn idx_bytes(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut bytes = magic.to_be_bytes().to_vec();
        for d in dims {
            bytes.extend_from_slice(&d.to_be_bytes());
        }
        bytes.extend_from_slice(data);
        bytes
    }

    /// `bytes` compressed with gzip.
    pub(crate) fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn sample_pixels() -> Vec<u8> {
        (0..2 * 3 * 4).map(|i| (i * 10) as u8).collect()
    }

    #[test]
    fn raw_images_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = idx_bytes(IMAGES_MAGIC, &[2, 3, 4], &sample_pixels());
        let path = write(dir.path(), "images-idx3-ubyte", &bytes);

        let images = read_images(&path).unwrap();

        assert_eq!((images.len(), images.rows(), images.cols()), (2, 3, 4));
        assert_eq!(images.pixels(), &sample_pixels()[..]);
        assert_eq!(images.image(1), &sample_pixels()[12..]);
    }

    #[test]
    fn gzipped_images_are_detected_by_magic_bytes_not_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = gzip(&idx_bytes(IMAGES_MAGIC, &[2, 3, 4], &sample_pixels()));
        let path = write(dir.path(), "no-extension", &bytes);

        let images = read_images(&path).unwrap();

        assert_eq!(images, IdxImages::new(2, 3, 4, sample_pixels()).unwrap());
    }

    #[test]
    fn labels_round_trip_raw_and_gzipped() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = idx_bytes(LABELS_MAGIC, &[5], &[3, 1, 4, 1, 5]);
        let raw = write(dir.path(), "labels", &bytes);
        let gz = write(dir.path(), "labels.gz", &gzip(&bytes));

        let from_raw = read_labels(&raw).unwrap();
        let from_gz = read_labels(&gz).unwrap();

        assert_eq!(from_raw, vec![3, 1, 4, 1, 5]);
        assert_eq!(from_gz, from_raw);
    }

    #[test]
    fn truncated_raw_file_reports_both_lengths() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = idx_bytes(IMAGES_MAGIC, &[2, 3, 4], &sample_pixels()[..20]);
        let path = write(dir.path(), "short", &bytes);

        let err = read_images(&path).unwrap_err();

        assert!(
            matches!(
                err,
                DataError::Length {
                    expected: 24,
                    actual: 20,
                    ..
                }
            ),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(message.contains("short") && message.contains("24") && message.contains("20"));
    }

    #[test]
    fn truncated_gzip_stream_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let pixels: Vec<u8> = (0..4000u32).map(|i| (i * 7919 % 251) as u8).collect();
        let full = gzip(&idx_bytes(IMAGES_MAGIC, &[10, 20, 20], &pixels));
        let path = write(dir.path(), "cut.gz", &full[..full.len() / 2]);

        let err = read_images(&path).unwrap_err();

        assert!(
            matches!(err, DataError::Corrupt { .. } | DataError::Length { .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("cut.gz"), "{err}");
    }

    #[test]
    fn gzip_magic_followed_by_garbage_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = vec![0x1f, 0x8b];
        bytes.extend((0..200u32).map(|i| (i * 31 % 256) as u8));
        let path = write(dir.path(), "garbage.gz", &bytes);

        let err = read_images(&path).unwrap_err();

        assert!(matches!(err, DataError::Corrupt { .. }), "{err:?}");
        assert!(err.to_string().contains("garbage.gz"), "{err}");
    }

    #[test]
    fn trailing_bytes_are_rejected_raw_and_gzipped() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = idx_bytes(LABELS_MAGIC, &[3], &[1, 2, 3, 4, 5]);
        let raw = write(dir.path(), "long", &bytes);
        let gz = write(dir.path(), "long.gz", &gzip(&bytes));

        let raw_err = read_labels(&raw).unwrap_err();
        let gz_err = read_labels(&gz).unwrap_err();

        assert!(matches!(
            raw_err,
            DataError::Length {
                expected: 3,
                actual: 5,
                ..
            }
        ));
        assert!(matches!(
            gz_err,
            DataError::Length {
                expected: 3,
                actual: 5,
                ..
            }
        ));
    }

    #[test]
    fn labels_file_read_as_images_is_a_bad_magic_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "labels",
            &idx_bytes(LABELS_MAGIC, &[2], &[0, 1]),
        );

        let err = read_images(&path).unwrap_err();

        assert!(matches!(
            err,
            DataError::BadMagic {
                expected: IMAGES_MAGIC,
                found: LABELS_MAGIC,
                ..
            }
        ));
        let expected = format!(
            "reading an IDX file: {}: bad magic number 0x00000801, expected 0x00000803",
            path.display()
        );
        assert!(err.to_string().starts_with(&expected), "{err}");
    }

    #[test]
    fn header_claiming_four_billion_images_in_100_bytes_fails_without_allocating() {
        // A header is 16 bytes; 84 bytes of data follow, far below 4e9 * 28 * 28.
        let dir = tempfile::tempdir().unwrap();
        let bytes = idx_bytes(IMAGES_MAGIC, &[4_000_000_000, 28, 28], &[7; 84]);
        assert_eq!(bytes.len(), 100);
        let raw = write(dir.path(), "huge", &bytes);
        let gz = write(dir.path(), "huge.gz", &gzip(&bytes));

        let raw_err = read_images(&raw).unwrap_err();
        let gz_err = read_images(&gz).unwrap_err();

        let claimed = 4_000_000_000u64 * 28 * 28;
        assert!(
            matches!(raw_err, DataError::Length { expected, actual: 84, .. } if expected == claimed)
        );
        assert!(
            matches!(gz_err, DataError::Length { expected, actual: 84, .. } if expected == claimed)
        );
    }

    #[test]
    fn dimensions_whose_product_overflows_are_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "overflow",
            &idx_bytes(IMAGES_MAGIC, &[u32::MAX; 3], &[]),
        );

        let err = read_images(&path).unwrap_err();

        assert!(matches!(err, DataError::Corrupt { .. }), "{err:?}");
        assert!(err.to_string().contains("overflow"), "{err}");
    }

    #[test]
    fn file_ending_inside_the_header_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let magic_only = write(dir.path(), "a", &[0, 0]);
        let dims_cut = write(dir.path(), "b", &idx_bytes(IMAGES_MAGIC, &[2, 3], &[]));

        let magic_err = read_images(&magic_only).unwrap_err();
        let dims_err = read_images(&dims_cut).unwrap_err();

        assert!(
            magic_err.to_string().contains("inside the magic number"),
            "{magic_err}"
        );
        assert!(
            dims_err.to_string().contains("inside the dimensions"),
            "{dims_err}"
        );
    }

    #[test]
    fn zero_sized_images_are_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "flat",
            &idx_bytes(IMAGES_MAGIC, &[5, 0, 28], &[]),
        );

        let err = read_images(&path).unwrap_err();

        assert!(matches!(err, DataError::Corrupt { .. }), "{err:?}");
    }

    #[test]
    fn missing_file_is_an_io_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();

        let err = read_labels(dir.path().join("absent")).unwrap_err();

        assert!(matches!(err, DataError::Io { .. }));
        assert!(err.to_string().contains("absent"), "{err}");
    }
}
