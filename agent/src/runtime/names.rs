//! Whole-name scoring ([`NameChoice`]): at a tool name, every name the
//! grammar admits is scored by the model's likelihood in one batched
//! decode, and the best is forced, instead of decoding the name token by
//! token, where the first token alone decides between names that share it.

use llama_cpp_2::token::LlamaToken;

use super::params::NameChoice;
use super::sampler::Chooser;
use super::session::Session;
use crate::error::Result;

/// Output tokens read back to find the current line: an anchor and a
/// partly written name fit in far fewer.
const TAIL_TOKENS: usize = 48;

/// Sequences of the KV cache (fewer if the batch is smaller): sequence 0
/// holds the conversation, the rest one candidate name each during scoring.
pub(super) const NAME_SEQUENCES: u32 = 32;

/// What remains of each line `choice` may still complete (with the name's
/// index), when the current line of `output` is the anchor followed by a
/// part that two or more of those lines begin with; `None` otherwise (not
/// at a name, or only one name left, which the grammar forces anyway).
pub(super) fn open_lines(choice: &NameChoice, output: &str) -> Option<Vec<(usize, String)>> {
    let line = output.rsplit('\n').next().unwrap_or(output);
    let written = line.strip_prefix(choice.anchor.as_str())?;
    let rests: Vec<(usize, String)> = choice
        .names
        .iter()
        .enumerate()
        .filter_map(|(i, name)| {
            let line = choice.line(name);
            line.strip_prefix(written)
                .filter(|rest| !rest.is_empty())
                .map(|rest| (i, rest.to_owned()))
        })
        .collect();
    (rests.len() >= 2).then_some(rests)
}

/// Mean log-probability per token of `tokens`, given the log-probability
/// of the first and the logits rows that predict each of the others.
fn mean_log_prob(first: f64, rows: &[&[f32]], tokens: &[LlamaToken]) -> f64 {
    let rest: f64 = rows
        .iter()
        .zip(&tokens[1..])
        .map(|(row, &t)| log_prob(row, t))
        .sum();
    (first + rest) / tokens.len() as f64
}

/// log softmax(`row`)[`token`], computed stably in f64.
fn log_prob(row: &[f32], token: LlamaToken) -> f64 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = row.iter().map(|&l| f64::from(l - max).exp()).sum();
    let logit = usize::try_from(token.0)
        .ok()
        .and_then(|i| row.get(i))
        .copied()
        .unwrap_or(f32::NEG_INFINITY);
    f64::from(logit - max) - sum.ln()
}

impl Session<'_> {
    /// The name lines open after the output `tokens` and then `next` (see
    /// [`open_lines`]): where whole-name scoring chooses, and jump-forward
    /// must not run on.
    pub(super) fn open_lines_after(
        &self,
        choice: &NameChoice,
        tokens: &[LlamaToken],
        next: LlamaToken,
    ) -> Option<Vec<(usize, String)>> {
        let mut tail = tail(tokens).to_vec();
        tail.push(next);
        open_lines(choice, &self.model().detokenize(&tail))
    }

    /// Of the open name lines `rests` (see [`open_lines`]) that `choice`
    /// keeps, the tokens of the one with the highest mean log-probability
    /// per token plus its prior, among those the grammar admits; a single
    /// kept line is forced unscored. The candidates run in decodes of at
    /// most the session's sequences less one, each on its own sequence
    /// sharing the conversation's cache; the KV cache is left as it was,
    /// and the logits of output `logits_index` of the last decode must
    /// still be there.
    pub(super) fn choose_name(
        &mut self,
        choice: &NameChoice,
        rests: &[(usize, String)],
        chooser: &Chooser,
        logits_index: i32,
    ) -> Result<Option<Vec<LlamaToken>>> {
        let (names, candidates): (Vec<usize>, Vec<Vec<LlamaToken>>) = rests
            .iter()
            .filter(|(i, _)| choice.kept(*i))
            .map(|(i, rest)| (*i, self.model().tokenize(rest, false)))
            .filter(|(_, c)| !c.is_empty() && chooser.admits(c))
            .unzip();
        if choice.keep.is_some() && candidates.len() == 1 {
            return Ok(candidates.into_iter().next());
        }
        // A decode holds a group's tokens in the batch and, beside the
        // conversation, in free cells of the KV cache.
        let params = self.params();
        let free = (params.n_ctx as usize).saturating_sub(self.cached_len() + 1);
        let room = (params.n_batch as usize).min(free);
        let per_decode = self.sequences() as usize - 1;
        let Some(groups) = groups(&candidates, room, per_decode).filter(|_| candidates.len() >= 2)
        else {
            return Ok(None);
        };
        let first_row = self.logits_row(logits_index).to_vec();
        let mut scores = Vec::with_capacity(candidates.len());
        for group in groups {
            scores.extend(self.score_group(group, &first_row)?);
        }
        for (score, &i) in scores.iter_mut().zip(&names) {
            *score += choice.prior_of(i);
        }
        let best = scores
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(&a.0)))
            .map(|(i, _)| i);
        Ok(best.and_then(|i| candidates.get(i).cloned()))
    }

    /// Scores each candidate of `group` on its own sequence (1, 2, ...),
    /// all in one decode, then drops those sequences again.
    fn score_group(&mut self, group: &[Vec<LlamaToken>], first_row: &[f32]) -> Result<Vec<f64>> {
        let start = self.cached_len();
        let seqs: Vec<i32> = (1..=group.len() as i32).collect();
        for &seq in &seqs {
            self.copy_sequence(seq, start)?;
        }
        let placed = self.decode_candidates(group, &seqs, start);
        let scores = placed.map(|offsets| {
            group
                .iter()
                .zip(offsets)
                .map(|(tokens, offset)| {
                    let rows: Vec<&[f32]> = (0..tokens.len() - 1)
                        .map(|j| self.logits_row(offset + j as i32))
                        .collect();
                    mean_log_prob(log_prob(first_row, tokens[0]), &rows, tokens)
                })
                .collect()
        });
        for &seq in &seqs {
            self.drop_sequence(seq)?;
        }
        scores
    }
}

/// The last [`TAIL_TOKENS`] of `tokens`.
fn tail(tokens: &[LlamaToken]) -> &[LlamaToken] {
    &tokens[tokens.len().saturating_sub(TAIL_TOKENS)..]
}

/// `candidates` cut into groups that fit one decode: at most `per_decode`
/// of them and `room` tokens in all; `None` if one alone does not fit.
fn groups(
    candidates: &[Vec<LlamaToken>],
    room: usize,
    per_decode: usize,
) -> Option<Vec<&[Vec<LlamaToken>]>> {
    if per_decode == 0 {
        return None;
    }
    let mut groups = Vec::new();
    let (mut start, mut tokens) = (0, 0);
    for (i, c) in candidates.iter().enumerate() {
        if c.len() > room {
            return None;
        }
        let full = i - start == per_decode;
        if full || tokens + c.len() > room {
            groups.push(&candidates[start..i]);
            (start, tokens) = (i, 0);
        }
        tokens += c.len();
    }
    groups.push(&candidates[start..]);
    Some(groups)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn choice() -> NameChoice {
        NameChoice::react([
            "Get Photo Description",
            "Get Photo",
            "Generate Image From User Input Text",
            "Segment the Image",
        ])
    }

    #[test]
    fn lines_open_at_the_anchor_and_narrow_as_the_name_is_written() {
        let c = choice();
        let rests = |output: &str| -> Vec<String> {
            open_lines(&c, output)
                .unwrap()
                .into_iter()
                .map(|(_, r)| r)
                .collect()
        };
        let all = open_lines(&c, "Thought: Do I need to use a tool? Yes\nAction:").unwrap();
        assert_eq!(all.len(), 4);
        assert_eq!(all[0], (0, " Get Photo Description\n".to_owned()));
        let ge = rests("Yes\nAction: Ge");
        assert_eq!(
            ge,
            [
                "t Photo Description\n",
                "t Photo\n",
                "nerate Image From User Input Text\n"
            ]
        );
        // A name and a longer one that begins with it stay apart by the end.
        let photo = rests("Yes\nAction: Get Photo");
        assert_eq!(photo, [" Description\n", "\n"]);
    }

    #[test]
    fn nothing_opens_off_the_anchor_or_with_one_name_left() {
        let c = choice();
        assert!(open_lines(&c, "Thought: Do I need to use a tool? Yes").is_none());
        assert!(open_lines(&c, "Action: Segment").is_none());
        assert!(open_lines(&c, "Action: Get Photo Description\n").is_none());
        assert!(open_lines(&c, "AI: Action: no").is_none());
        assert!(open_lines(&c, "Action: Unknown").is_none());
    }

    #[test]
    fn groups_keep_to_the_sequences_and_the_room() {
        let c = |n: usize| vec![LlamaToken(0); n];
        let candidates = vec![c(3), c(4), c(2), c(5)];
        let sizes =
            |g: Vec<&[Vec<LlamaToken>]>| -> Vec<usize> { g.iter().map(|g| g.len()).collect() };
        assert_eq!(sizes(groups(&candidates, 100, 31).unwrap()), [4]);
        // 3 + 4 fit in 7, then 2 + 5.
        assert_eq!(sizes(groups(&candidates, 7, 31).unwrap()), [2, 2]);
        assert_eq!(sizes(groups(&candidates, 6, 31).unwrap()), [1, 2, 1]);
        assert!(
            groups(&candidates, 4, 31).is_none(),
            "a name of 5 tokens fits no decode"
        );
        let many = vec![c(1); 40];
        assert_eq!(sizes(groups(&many, 1000, 31).unwrap()), [31, 9]);
        assert_eq!(sizes(groups(&many, 1000, 15).unwrap()), [15, 15, 10]);
        assert!(
            groups(&many, 1000, 0).is_none(),
            "a session of one sequence scores nothing"
        );
    }

    #[test]
    fn log_probabilities_match_a_softmax_by_hand() {
        let row = [1.0f32, 2.0, 3.0];
        let z: f64 = [1.0f64, 2.0, 3.0].iter().map(|x| x.exp()).sum();
        assert!((log_prob(&row, LlamaToken(2)) - (3.0 - z.ln())).abs() < 1e-12);
        assert!((log_prob(&row, LlamaToken(0)) - (1.0 - z.ln())).abs() < 1e-12);
        // Large logits do not overflow.
        let big = [1000.0f32, 1000.0];
        assert!((log_prob(&big, LlamaToken(1)) - 0.5f64.ln()).abs() < 1e-12);
        // Per token: (ln p1 + ln p2) / 2.
        let tokens = [LlamaToken(0), LlamaToken(2)];
        let mean = mean_log_prob(-1.0, &[&row], &tokens);
        assert!((mean - (-1.0 + 3.0 - z.ln()) / 2.0).abs() < 1e-12);
    }
}
