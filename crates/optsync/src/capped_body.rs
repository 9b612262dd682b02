//! An outbound HTTP answer's body, read with a cap: a server we call (a CA, a provider's
//! certificate URL) cannot make us hold more than the cap, whether it states its length or
//! streams without one.

use std::fmt;

/// Why a capped read failed.
#[derive(Debug)]
pub enum CappedRead {
    /// The answer is over the cap (said by its length, or found while reading).
    TooLarge(usize),
    /// The connection failed while reading.
    Read(reqwest::Error),
}

impl fmt::Display for CappedRead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge(max) => write!(f, "answer too large (over {max} bytes)"),
            Self::Read(e) => write!(f, "reading the answer: {e}"),
        }
    }
}

impl std::error::Error for CappedRead {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::TooLarge(_) => None,
            Self::Read(e) => Some(e),
        }
    }
}

/// The body of `answer`, refused past `max` bytes before more is read.
pub async fn read_capped(mut answer: reqwest::Response, max: usize) -> Result<Vec<u8>, CappedRead> {
    if answer.content_length().is_some_and(|n| n > max as u64) {
        return Err(CappedRead::TooLarge(max));
    }
    let mut body = Vec::new();
    while let Some(chunk) = answer.chunk().await.map_err(CappedRead::Read)? {
        if body.len() + chunk.len() > max {
            return Err(CappedRead::TooLarge(max));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
