//! Training examples: a registry's system part (what the generator
//! compiles), and the edge model's tokens without it, with the loss on the
//! output tokens only.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// One example in edge-model tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    pub system: String,
    pub tokens: Vec<u32>,
    /// The first output token: tokens before it are prompt, without loss.
    pub output_from: usize,
}

/// Examples from `(system part, prompt without it, output)` triples, in
/// edge tokens. The prompt starts with BOS. Examples longer than `max_seq`
/// tokens are dropped and counted.
pub fn examples<'a>(
    items: impl IntoIterator<Item = (&'a str, String, &'a str)>,
    tokenize: impl Fn(&str, bool) -> Vec<u32>,
    max_seq: usize,
) -> (Vec<Example>, usize) {
    let mut out = Vec::new();
    let mut too_long = 0;
    for (system, prompt, output) in items {
        let mut tokens = tokenize(&prompt, true);
        let output_from = tokens.len();
        tokens.extend(tokenize(output, false));
        if tokens.len() > max_seq || tokens.len() == output_from || output_from == 0 {
            too_long += 1;
            continue;
        }
        out.push(Example {
            system: system.to_owned(),
            tokens,
            output_from,
        });
    }
    (out, too_long)
}

/// The example indices of training step `step`: consecutive slices of a
/// permutation of all examples, a new permutation (from the seed and the
/// epoch) each epoch. A function of (seed, step) alone, so a resumed run
/// sees the batches the uninterrupted one would.
pub fn batch_of(step: usize, batch: usize, n: usize, seed: u64) -> Vec<usize> {
    let per_epoch = (n / batch).max(1);
    let (epoch, slot) = (step / per_epoch, step % per_epoch);
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(
        seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
    ));
    order
        .into_iter()
        .cycle()
        .skip(slot * batch)
        .take(batch)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_cover_an_epoch_once_and_reshuffle_after() {
        let first: Vec<usize> = (0..5).flat_map(|s| batch_of(s, 2, 10, 7)).collect();
        let mut sorted = first.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..10).collect::<Vec<_>>());
        let second: Vec<usize> = (5..10).flat_map(|s| batch_of(s, 2, 10, 7)).collect();
        assert_ne!(first, second);
        assert_eq!(batch_of(3, 2, 10, 7), batch_of(3, 2, 10, 7));
    }

    #[test]
    fn examples_mark_the_output_and_drop_long_ones() {
        let tok = |s: &str, bos: bool| {
            let mut t: Vec<u32> = if bos { vec![1] } else { vec![] };
            t.extend(s.bytes().map(u32::from));
            t
        };
        let items = vec![
            ("sys", "ab".to_owned(), "cd"),
            ("sys", "abcdef".to_owned(), "gh"),
        ];
        let (ex, dropped) = examples(items, tok, 6);
        assert_eq!(dropped, 1);
        assert_eq!(ex[0].tokens, vec![1, 97, 98, 99, 100]);
        assert_eq!(ex[0].output_from, 3);
    }
}
