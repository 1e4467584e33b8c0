//! Lets grpc-go clients that dial `http://host:port` reach keel.
//!
//! etcdctl (and every clientv3 program) dials each endpoint it was given
//! verbatim for some calls — `endpoint status`, `defrag`, `snapshot save` —
//! so its HTTP/2 `:authority` is `http://127.0.0.1:2379`. grpc-go's server
//! (etcd) ignores that; `h2` refuses it as a malformed authority and resets
//! the stream with PROTOCOL_ERROR. keel never uses the authority, so this
//! adapter, on the client-to-server byte stream, rewrites a leading
//! `http://` or `https://` in an `:authority` value to `httpx--` or
//! `httpsx--` (a valid host name) before `h2` decodes it.
//!
//! The rewrite keeps the value's length in octets (so both HPACK dynamic
//! tables stay the same size) and, for Huffman-coded values, its length in
//! bits (so the bytes are patched in place and no frame changes length).
//! Only HEADERS frames that carry a whole header block are inspected; every
//! other byte passes through untouched, DATA payloads without a copy.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_lite::AsyncRead;

/// The client connection preface, passed through before the first frame.
const PREFACE_BYTES: usize = 24;
const FRAME_HEADER_BYTES: usize = 9;
const FRAME_TYPE_HEADERS: u8 = 0x1;
const FLAG_END_HEADERS: u8 = 0x4;
const FLAG_PADDED: u8 = 0x8;
const FLAG_PRIORITY: u8 = 0x20;
/// HEADERS frames larger than this pass through uninspected (h2's own
/// limit, 16 KiB by default, refuses them anyway).
pub const HEADERS_FRAME_BYTES_MAX: usize = 1 << 20;
/// HPACK's static table index of `:authority`.
const STATIC_AUTHORITY: usize = 1;

/// Bytes read from the socket at once.
pub const READ_CHUNK_BYTES: usize = 64 << 10;

pub struct AuthorityFix<S> {
    inner: S,
    /// Bytes read from `inner`: `[start, end)` not yet handed out, of
    /// which `[start, ready)` are checked (and patched) and may go.
    buffer: Vec<u8>,
    start: usize,
    ready: usize,
    end: usize,
    /// Bytes after `ready` to pass through unchecked (the preface, or the
    /// rest of a frame that is not a HEADERS frame).
    skip: usize,
    eof: bool,
}

impl<S> AuthorityFix<S> {
    pub fn new(inner: S) -> AuthorityFix<S> {
        AuthorityFix {
            inner,
            buffer: vec![0; READ_CHUNK_BYTES],
            start: 0,
            ready: 0,
            end: 0,
            skip: PREFACE_BYTES,
            eof: false,
        }
    }

    /// Advances `ready` over every whole frame (or passed-through byte)
    /// now in the buffer, patching HEADERS frames in place. Returns how
    /// many bytes from `ready` a frame needs in the buffer, when it is
    /// incomplete.
    fn check(&mut self) -> Option<usize> {
        loop {
            if self.skip > 0 {
                let take = self.skip.min(self.end - self.ready);
                self.ready += take;
                self.skip -= take;
                if self.skip > 0 {
                    return None;
                }
                continue;
            }
            let available = self.end - self.ready;
            if available < FRAME_HEADER_BYTES {
                return (available > 0).then_some(FRAME_HEADER_BYTES);
            }
            let header = &self.buffer[self.ready..self.ready + FRAME_HEADER_BYTES];
            let length = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
            if header[3] == FRAME_TYPE_HEADERS && length <= HEADERS_FRAME_BYTES_MAX {
                let whole = FRAME_HEADER_BYTES + length;
                if available < whole {
                    return Some(whole);
                }
                rewrite_authority(&mut self.buffer[self.ready..self.ready + whole]);
                self.ready += whole;
            } else {
                self.ready += FRAME_HEADER_BYTES;
                self.skip = length;
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for AuthorityFix<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        loop {
            if this.start < this.ready {
                let count = buf.len().min(this.ready - this.start);
                buf[..count].copy_from_slice(&this.buffer[this.start..this.start + count]);
                this.start += count;
                return Poll::Ready(Ok(count));
            }
            if this.eof {
                // A torn frame at the end: hand it over as it is.
                this.ready = this.end;
                if this.start == this.end {
                    return Poll::Ready(Ok(0));
                }
                continue;
            }
            let needed = this.check();
            if this.start < this.ready {
                continue;
            }
            // Make room: move the unchecked tail to the front, grow for a
            // large HEADERS frame.
            this.buffer.copy_within(this.start..this.end, 0);
            this.end -= this.start;
            this.ready -= this.start;
            this.start = 0;
            let wanted = needed.unwrap_or(0).max(READ_CHUNK_BYTES);
            if this.buffer.len() < wanted {
                this.buffer.resize(wanted, 0);
            }
            let end = this.end;
            match Pin::new(&mut this.inner).poll_read(cx, &mut this.buffer[end..]) {
                Poll::Ready(Ok(0)) => this.eof = true,
                Poll::Ready(Ok(read)) => this.end += read,
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

crate::io_compat::delegate_async_write!(AuthorityFix, inner);

/// Rewrites the `:authority` scheme prefix in one whole HEADERS frame
/// (9-byte header included), in place. Anything it cannot parse is left
/// as it is for `h2` to judge.
pub fn rewrite_authority(frame: &mut [u8]) {
    let flags = frame[4];
    if flags & FLAG_END_HEADERS == 0 {
        return; // CONTINUATION frames follow: leave the block alone
    }
    let mut start = FRAME_HEADER_BYTES;
    let mut end = frame.len();
    if flags & FLAG_PADDED != 0 {
        let Some(&pad) = frame.get(start) else { return };
        start += 1;
        end = match end.checked_sub(pad as usize) {
            Some(end) if end >= start => end,
            _ => return,
        };
    }
    if flags & FLAG_PRIORITY != 0 {
        start += 5;
    }
    if start > end {
        return;
    }
    let _ = walk_block(&mut frame[start..end]);
}

/// Walks an HPACK header block; `None` if it is malformed.
fn walk_block(block: &mut [u8]) -> Option<()> {
    let mut at = 0;
    while at < block.len() {
        let first = block[at];
        let name_index = if first & 0x80 != 0 {
            read_integer(block, &mut at, 7)?; // indexed field
            continue;
        } else if first & 0xC0 == 0x40 {
            read_integer(block, &mut at, 6)? // literal, incremental indexing
        } else if first & 0xE0 == 0x20 {
            read_integer(block, &mut at, 5)?; // dynamic table size update
            continue;
        } else {
            read_integer(block, &mut at, 4)? // literal, not / never indexed
        };
        let is_authority = if name_index == 0 {
            let (huffman, name) = read_string(block, &mut at)?;
            !huffman && &block[name] == b":authority"
        } else {
            name_index == STATIC_AUTHORITY
        };
        let (huffman, value) = read_string(block, &mut at)?;
        if is_authority {
            let value = &mut block[value];
            if huffman {
                fix_huffman(value);
            } else {
                fix_raw(value);
            }
        }
    }
    Some(())
}

fn read_integer(block: &[u8], at: &mut usize, prefix_bits: u32) -> Option<usize> {
    let mask = (1u32 << prefix_bits) - 1;
    let mut value = (*block.get(*at)? as u32 & mask) as usize;
    *at += 1;
    if value < mask as usize {
        return Some(value);
    }
    let mut shift = 0u32;
    loop {
        let byte = *block.get(*at)?;
        *at += 1;
        value = value.checked_add(((byte & 0x7f) as usize).checked_shl(shift)?)?;
        if byte & 0x80 == 0 {
            return Some(value);
        }
        shift += 7;
        if shift > 28 {
            return None;
        }
    }
}

/// A string literal's Huffman flag and byte range.
fn read_string(block: &[u8], at: &mut usize) -> Option<(bool, std::ops::Range<usize>)> {
    let huffman = *block.get(*at)? & 0x80 != 0;
    let len = read_integer(block, at, 7)?;
    let start = *at;
    let end = start.checked_add(len).filter(|&end| end <= block.len())?;
    *at = end;
    Some((huffman, start..end))
}

/// The same-length stand-ins for the scheme prefixes.
const REWRITES: [(&[u8], &[u8]); 2] = [(b"https://", b"httpsx--"), (b"http://", b"httpx--")];

fn fix_raw(value: &mut [u8]) {
    for (from, to) in REWRITES {
        if value.starts_with(from) {
            value[..to.len()].copy_from_slice(to);
            return;
        }
    }
}

fn fix_huffman(value: &mut [u8]) {
    for (from, to) in REWRITES {
        let (from_bits, from_len) = huffman_bits(from);
        let (to_bits, to_len) = huffman_bits(to);
        debug_assert_eq!(from_len, to_len, "same length in bits");
        if value.len() * 8 >= from_len && read_bits(value, from_len) == from_bits {
            write_bits(value, to_bits, to_len);
            return;
        }
    }
}

/// HPACK Huffman codes (RFC 7541, Appendix B) of the characters above.
fn huffman_code(byte: u8) -> (u64, usize) {
    match byte {
        b'h' => (0b100111, 6),
        b't' => (0b01001, 5),
        b'p' => (0b101011, 6),
        b's' => (0b01000, 5),
        b':' => (0b1011100, 7),
        b'/' => (0b011000, 6),
        b'x' => (0b1111001, 7),
        b'-' => (0b010110, 6),
        other => unreachable!("no code listed for {other}"),
    }
}

/// The Huffman code of `text` as the top bits of a u64, and its length.
fn huffman_bits(text: &[u8]) -> (u64, usize) {
    let mut bits = 0u64;
    let mut len = 0usize;
    for &byte in text {
        let (code, code_len) = huffman_code(byte);
        bits |= code << (64 - len - code_len);
        len += code_len;
    }
    (bits, len)
}

/// The first `len` bits of `bytes`, as the top bits of a u64.
fn read_bits(bytes: &[u8], len: usize) -> u64 {
    let mut word = [0u8; 8];
    let take = bytes.len().min(8);
    word[..take].copy_from_slice(&bytes[..take]);
    let all = u64::from_be_bytes(word);
    all & (u64::MAX << (64 - len))
}

/// Overwrites the first `len` bits of `bytes` with the top bits of `bits`.
fn write_bits(bytes: &mut [u8], bits: u64, len: usize) {
    let mut word = [0u8; 8];
    let take = bytes.len().min(8);
    word[..take].copy_from_slice(&bytes[..take]);
    let mask = u64::MAX << (64 - len);
    let patched = (u64::from_be_bytes(word) & !mask) | (bits & mask);
    bytes[..take].copy_from_slice(&patched.to_be_bytes()[..take]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers_frame(block: &[u8]) -> Vec<u8> {
        let mut frame = vec![
            0,
            0,
            block.len() as u8,
            FRAME_TYPE_HEADERS,
            FLAG_END_HEADERS,
            0,
            0,
            0,
            1,
        ];
        frame.extend_from_slice(block);
        frame
    }

    #[test]
    fn huffman_authority_from_grpc_go_is_patched_in_place() {
        // ":authority: http://127.0.0.1:23999", literal with incremental
        // indexing, Huffman-coded (bytes from an independent HPACK encoder),
        // then an indexed field.
        let block = hex("41909d29aee30c044eae05c0b86e0997df7f82");
        let mut frame = headers_frame(&block);
        rewrite_authority(&mut frame);
        let patched = &frame[FRAME_HEADER_BYTES..];
        assert_eq!(patched.len(), block.len());
        assert_ne!(patched, &block[..]);
        // The value now decodes to "httpx--127.0.0.1:23999": check the
        // prefix bits and that everything after them is untouched.
        let value = &patched[2..18];
        let (want, len) = huffman_bits(b"httpx--");
        assert_eq!(read_bits(value, len), want);
        assert_eq!(value[6..], block[2 + 6..18]);
        assert_eq!(patched[18], 0x82);
    }

    #[test]
    fn raw_authorities_keep_their_length() {
        let value = b"https://example:2379";
        let mut block = vec![0x01, value.len() as u8]; // literal without indexing, name 1
        block.extend_from_slice(value);
        let mut frame = headers_frame(&block);
        rewrite_authority(&mut frame);
        assert_eq!(&frame[FRAME_HEADER_BYTES + 2..], b"httpsx--example:2379");
        // A plain authority and other headers are left alone.
        let mut block = vec![0x41, 14];
        block.extend_from_slice(b"127.0.0.1:2379");
        block.extend_from_slice(&[0x00, 4]);
        block.extend_from_slice(b"http");
        block.extend_from_slice(&[7]);
        block.extend_from_slice(b"http://");
        let original = headers_frame(&block);
        let mut frame = original.clone();
        rewrite_authority(&mut frame);
        assert_eq!(frame, original);
    }

    #[test]
    fn malformed_blocks_are_left_to_h2() {
        let original = headers_frame(&[0x41, 0x7f, 0xff, 0xff, 0xff, 0xff, 0x0f]);
        let mut frame = original.clone();
        rewrite_authority(&mut frame);
        assert_eq!(frame, original);
    }

    #[test]
    fn the_stream_passes_everything_else_through() {
        let mut input = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        let data_frame = [0, 0, 3, 0x0, 0x1, 0, 0, 0, 1, b'a', b'b', b'c'];
        input.extend_from_slice(&data_frame);
        let mut headers = headers_frame(&hex("41909d29aee30c044eae05c0b86e0997df7f"));
        input.extend_from_slice(&headers);
        let mut fixed = AuthorityFix::new(futures_lite::io::Cursor::new(input.clone()));
        let mut output = Vec::new();
        futures_lite::future::block_on(futures_lite::AsyncReadExt::read_to_end(
            &mut fixed,
            &mut output,
        ))
        .unwrap();
        rewrite_authority(&mut headers);
        let mut expected = input[..PREFACE_BYTES + data_frame.len()].to_vec();
        expected.extend_from_slice(&headers);
        assert_eq!(output, expected);
    }

    /// Hands out one byte per read, so every frame arrives torn.
    struct Trickle(Vec<u8>, usize);

    impl AsyncRead for Trickle {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            if self.1 >= self.0.len() || buf.is_empty() {
                return Poll::Ready(Ok(0));
            }
            buf[0] = self.0[self.1];
            self.1 += 1;
            Poll::Ready(Ok(1))
        }
    }

    #[test]
    fn frames_torn_across_reads_are_patched_the_same() {
        let mut input = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        let headers = headers_frame(&hex("41909d29aee30c044eae05c0b86e0997df7f"));
        for _ in 0..3 {
            input.extend_from_slice(&[0, 0, 2, 0x0, 0x0, 0, 0, 0, 1, b'x', b'y']);
            input.extend_from_slice(&headers);
        }
        let mut expected_headers = headers.clone();
        rewrite_authority(&mut expected_headers);
        let mut fixed = AuthorityFix::new(Trickle(input.clone(), 0));
        let mut output = Vec::new();
        futures_lite::future::block_on(futures_lite::AsyncReadExt::read_to_end(
            &mut fixed,
            &mut output,
        ))
        .unwrap();
        assert_eq!(output.len(), input.len());
        let patched = output
            .windows(expected_headers.len())
            .filter(|window| *window == &expected_headers[..])
            .count();
        assert_eq!(patched, 3);
    }

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }
}
