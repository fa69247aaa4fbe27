//! Trains the byte-level BPE tokenizer and reports how long it takes and how well it
//! compresses: on the embedded Shakespeare corpus by default, or on a file or folder given as
//! the first argument; the vocabulary size is the second argument (default 512).
//!
//! ```text
//! cargo run -p strata-data --example bpe_train [path] [vocab_size]
//! ```

use std::time::Instant;

use anyhow::{ensure, Result};
use strata_data::bpe::BpeTokenizer;
use strata_data::corpus::SHAKESPEARE;
use strata_data::text::read_text;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let text = match args.next() {
        Some(path) => read_text(path)?,
        None => SHAKESPEARE.to_string(),
    };
    let vocab_size: usize = args.next().map_or(Ok(512), |s| s.parse())?;

    let start = Instant::now();
    let tokenizer = BpeTokenizer::train(&text, vocab_size)?;
    let train_s = start.elapsed().as_secs_f64();

    let start = Instant::now();
    let ids = tokenizer.encode(&text);
    let encode_s = start.elapsed().as_secs_f64();

    let start = Instant::now();
    let decoded = tokenizer.decode(&ids)?;
    let decode_s = start.elapsed().as_secs_f64();
    ensure!(decoded == text, "the round trip changed the text");

    println!("corpus: {} bytes", text.len());
    println!("train to {} tokens: {train_s:.3} s", tokenizer.vocab_size());
    println!(
        "encode: {encode_s:.3} s, {} tokens ({:.2} bytes per token)",
        ids.len(),
        text.len() as f64 / ids.len() as f64
    );
    println!("decode: {decode_s:.3} s, round trip exact");
    let longest = (256..tokenizer.vocab_size())
        .filter_map(|id| tokenizer.token_bytes(id))
        .max_by_key(|bytes| bytes.len())
        .map(String::from_utf8_lossy);
    println!("longest token: {longest:?}");
    Ok(())
}
