//! General requests that need no tool, each with a short correct answer:
//! arithmetic, unit conversions, definitions, rewriting and short writing.

use rand::seq::IndexedRandom;
use rand::Rng;

use super::episode::capitalise;
use super::pools::Pools;

/// A request and its answer.
pub fn negative(rng: &mut impl Rng, pools: &Pools) -> (String, String) {
    match rng.random_range(0..20) {
        0..=4 => arithmetic(rng),
        5..=6 => conversion(rng),
        7..=11 => definition(rng, pools),
        12..=14 => rewriting(rng, pools),
        _ => pools
            .writing
            .choose(rng)
            .cloned()
            .unwrap_or_else(|| arithmetic(rng)),
    }
}

fn arithmetic(rng: &mut impl Rng) -> (String, String) {
    let (a, b) = (rng.random_range(2..100i64), rng.random_range(2..100i64));
    let (symbol, word, value) = match rng.random_range(0..4) {
        0 => ("+", "plus", a + b),
        1 => ("-", "minus", a - b),
        2 => ("*", "times", a * b),
        _ => ("/", "divided by", a), // asked as (a*b)/b so it divides evenly
    };
    let a_shown = if symbol == "/" { a * b } else { a };
    let request = match rng.random_range(0..5) {
        0 => format!("What is {a_shown} {word} {b}?"),
        1 => format!("Calculate {a_shown} {symbol} {b}."),
        2 => format!("How much is {a_shown} {word} {b}?"),
        3 => format!("Can you compute {a_shown} {symbol} {b} for me?"),
        _ => format!("Quick math: {a_shown} {word} {b}?"),
    };
    (request, format!("{a_shown} {word} {b} is {value}."))
}

fn conversion(rng: &mut impl Rng) -> (String, String) {
    let n = rng.random_range(2..13i64);
    let (big, small, factor) = *[
        ("hours", "minutes", 60),
        ("minutes", "seconds", 60),
        ("weeks", "days", 7),
        ("meters", "centimeters", 100),
        ("kilograms", "grams", 1000),
        ("days", "hours", 24),
    ]
    .choose(rng)
    .unwrap_or(&("hours", "minutes", 60));
    (
        format!("How many {small} are in {n} {big}?"),
        format!("There are {} {small} in {n} {big}.", n * factor),
    )
}

fn definition(rng: &mut impl Rng, pools: &Pools) -> (String, String) {
    let Some((term, meaning)) = pools.definitions.choose(rng) else {
        return arithmetic(rng);
    };
    let request = match rng.random_range(0..5) {
        0 => format!("What is {term}?"),
        1 => format!("Define {term}."),
        2 => format!("Can you explain what {term} is?"),
        3 => format!("Give me a short definition of {term}."),
        _ => format!("Tell me what {term} is."),
    };
    (request, format!("{} is {meaning}", capitalise(term)))
}

fn rewriting(rng: &mut impl Rng, pools: &Pools) -> (String, String) {
    let Some(caption) = pools.captions.choose(rng) else {
        return arithmetic(rng);
    };
    let text = &caption.text;
    match rng.random_range(0..4) {
        0 => (
            format!("Rewrite this sentence in capital letters: {text}"),
            text.to_uppercase(),
        ),
        1 => {
            let n = text.split_whitespace().count();
            (
                format!("How many words are in this sentence? {text}"),
                format!("The sentence has {n} words."),
            )
        }
        2 => {
            let words: Vec<&str> = text
                .trim_end_matches('.')
                .split_whitespace()
                .rev()
                .collect();
            (
                format!("Reverse the order of the words in: {text}"),
                words.join(" "),
            )
        }
        _ => (
            format!("Rewrite this sentence in lower case: {text}"),
            text.to_lowercase(),
        ),
    }
}
