//! Trace context for the server: [`TraceParent`] and the
//! [`MonitorConfig::trace_context`](super::MonitorConfig::trace_context)
//! setting that hands it to the pool.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// A W3C trace context (`traceparent`: version `00`, trace id, parent span
/// id, sampled flag), as the pool shows it to the server in
/// `application_name` (see [`MonitorConfig::trace_context`](super::MonitorConfig::trace_context)).
///
/// Displayed and parsed in the header's form, 55 characters, which fits
/// `application_name` (63 bytes):
///
/// ```
/// use db_monitor::TraceParent;
///
/// let parent = TraceParent::new([0x4b; 16], [0xf9; 8], true).unwrap();
/// let text = parent.to_string();
/// assert_eq!(text, "00-4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b-f9f9f9f9f9f9f9f9-01");
/// assert_eq!(text.parse::<TraceParent>(), Ok(parent));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TraceParent {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    sampled: bool,
}

impl TraceParent {
    /// A trace context, or `None` if either id is all zeros (invalid, as
    /// the W3C specification says).
    pub fn new(trace_id: [u8; 16], span_id: [u8; 8], sampled: bool) -> Option<Self> {
        (trace_id != [0; 16] && span_id != [0; 8]).then_some(TraceParent {
            trace_id,
            span_id,
            sampled,
        })
    }

    /// The trace id.
    pub fn trace_id(&self) -> [u8; 16] {
        self.trace_id
    }

    /// The parent span id.
    pub fn span_id(&self) -> [u8; 8] {
        self.span_id
    }

    /// Whether the trace is sampled.
    pub fn sampled(&self) -> bool {
        self.sampled
    }

    /// The header form in a buffer of its own (no allocation).
    pub(crate) fn encode(&self) -> [u8; 55] {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [b'-'; 55];
        out[0] = b'0';
        out[1] = b'0';
        let mut put = |at: usize, bytes: &[u8]| {
            for (i, b) in bytes.iter().enumerate() {
                out[at + 2 * i] = HEX[usize::from(b >> 4)];
                out[at + 2 * i + 1] = HEX[usize::from(b & 15)];
            }
        };
        put(3, &self.trace_id);
        put(36, &self.span_id);
        put(53, &[u8::from(self.sampled)]);
        out
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let encoded = self.encode();
        // Only ASCII hex digits and dashes were written.
        f.write_str(std::str::from_utf8(&encoded).map_err(|_| fmt::Error)?)
    }
}

/// A `traceparent` that is not of the form `00-{32 hex}-{16 hex}-{2 hex}`
/// with non-zero ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceParentError;

impl fmt::Display for TraceParentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a traceparent (00-<32 hex digits>-<16 hex digits>-<2 hex digits>, ids not all zero)")
    }
}

impl std::error::Error for TraceParentError {}

impl FromStr for TraceParent {
    type Err = TraceParentError;

    fn from_str(s: &str) -> Result<Self, TraceParentError> {
        fn hex<const N: usize>(s: &str) -> Option<[u8; N]> {
            if s.len() != 2 * N || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            let mut out = [0; N];
            for (i, byte) in out.iter_mut().enumerate() {
                *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
            }
            Some(out)
        }
        let mut parts = s.split('-');
        let (Some("00"), Some(trace), Some(span), Some(flags), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TraceParentError);
        };
        let (Some(trace_id), Some(span_id), Some([flags])) = (hex::<16>(trace), hex::<8>(span), hex::<1>(flags)) else {
            return Err(TraceParentError);
        };
        TraceParent::new(trace_id, span_id, flags & 1 == 1).ok_or(TraceParentError)
    }
}

/// Where the pool finds the current trace context at each checkout: a
/// function, so that the crate does not tie itself to one version of
/// OpenTelemetry. See [`MonitorConfig::trace_context`](super::MonitorConfig::trace_context).
#[derive(Clone)]
pub struct TraceContext(pub(crate) Arc<dyn Fn() -> Option<TraceParent> + Send + Sync>);

impl fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TraceContext(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trace_parent_round_trips_and_bad_ones_are_refused() {
        let parent = TraceParent::new([0xab; 16], [0x01; 8], false).unwrap();
        assert_eq!(
            parent.to_string(),
            "00-abababababababababababababababab-0101010101010101-00"
        );
        assert_eq!(parent.to_string().parse(), Ok(parent));
        for bad in [
            "",
            "01-abababababababababababababababab-0101010101010101-00",
            "00-00000000000000000000000000000000-0101010101010101-01",
            "00-abababababababababababababababab-0000000000000000-01",
            "00-abababababababababababababababab-0101010101010101",
            "00-abababababababababababababababab-0101010101010101-01-x",
            "00-ababababababababababababababab-0101010101010101-01",
            "00-abababababababababababababababzz-0101010101010101-01",
            "00-+bababababababababababababababab-0101010101010101-01",
        ] {
            assert_eq!(bad.parse::<TraceParent>(), Err(TraceParentError), "{bad}");
        }
        assert!(TraceParent::new([0; 16], [1; 8], true).is_none());
    }
}
