//! Stop strings: matched on the generated text across token boundaries and never emitted.
//!
//! Text is held back while its end could be the start of a stop string, so nothing of a
//! stop string ever reaches the caller; everything else is released as soon as it is safe.

/// Filters streamed text for stop strings.
pub struct StopStrings {
    stops: Vec<String>,
    pending: String,
}

/// What to do after feeding text.
#[derive(Debug, PartialEq, Eq)]
pub struct StopStep {
    /// Text that is safe to emit now.
    pub emit: String,
    /// A stop string was found: generation must end (text from the match on is dropped).
    pub stopped: bool,
}

impl StopStrings {
    /// A filter for `stops` (empty strings are ignored).
    pub fn new(stops: &[String]) -> Self {
        Self {
            stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(),
            pending: String::new(),
        }
    }

    /// Adds generated text; returns what can be emitted and whether a stop string matched.
    pub fn push(&mut self, text: &str) -> StopStep {
        self.pending.push_str(text);
        if self.stops.is_empty() {
            return StopStep {
                emit: std::mem::take(&mut self.pending),
                stopped: false,
            };
        }
        let first_match = self
            .stops
            .iter()
            .filter_map(|s| self.pending.find(s.as_str()))
            .min();
        if let Some(at) = first_match {
            let emit = self.pending[..at].to_owned();
            self.pending.clear();
            return StopStep {
                emit,
                stopped: true,
            };
        }
        // Hold back the longest suffix that is a proper prefix of a stop string.
        let hold = self
            .stops
            .iter()
            .map(|s| longest_suffix_prefix(&self.pending, s))
            .max()
            .unwrap_or(0);
        let cut = self.pending.len() - hold;
        let emit = self.pending[..cut].to_owned();
        self.pending.drain(..cut);
        StopStep {
            emit,
            stopped: false,
        }
    }

    /// Releases the held-back text (generation ended without a stop string).
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.pending)
    }
}

/// Length of the longest suffix of `text` that is a proper prefix of `stop`.
fn longest_suffix_prefix(text: &str, stop: &str) -> usize {
    let max = (stop.len() - 1).min(text.len());
    (1..=max)
        .rev()
        .find(|&n| {
            text.is_char_boundary(text.len() - n)
                && stop
                    .as_bytes()
                    .starts_with(&text.as_bytes()[text.len() - n..])
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], chunks: &[&str]) -> (String, bool) {
        let stops: Vec<String> = stops.iter().map(|s| s.to_string()).collect();
        let mut filter = StopStrings::new(&stops);
        let mut out = String::new();
        for chunk in chunks {
            let step = filter.push(chunk);
            out += &step.emit;
            if step.stopped {
                return (out, true);
            }
        }
        out += &filter.finish();
        (out, false)
    }

    #[test]
    fn stop_string_split_across_chunks_is_caught_and_not_emitted() {
        assert_eq!(
            run(&["\nUser:"], &["Paris.", "\nUs", "er:", " more"]),
            ("Paris.".into(), true)
        );
    }

    #[test]
    fn partial_match_that_fails_is_released() {
        assert_eq!(
            run(&["STOP"], &["ST", "OCK ", "market"]),
            ("STOCK market".into(), false)
        );
    }

    #[test]
    fn earliest_of_several_stops_wins() {
        assert_eq!(run(&["b", "xa"], &["..xab"]), ("..".into(), true));
    }

    #[test]
    fn multibyte_text_is_never_split() {
        assert_eq!(
            run(&["é!"], &["caf", "é", "é!"]),
            ("caf\u{e9}".into(), true)
        );
        assert_eq!(run(&["€x"], &["1€", "2"]), ("1€2".into(), false));
    }
}
