//! Tool definitions for loragen agents.

pub mod gpt4tools;
