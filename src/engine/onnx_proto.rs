//! The protobuf wire format, walked rather than decoded: enough to read the parts of an
//! ONNX `ModelProto` the logits rewrite looks at (node inputs and outputs, names, shapes)
//! and to write new messages. Fields nobody changes, initializer bytes above all, are
//! copied as they are. No schema, no generated code: ONNX's field numbers are named where
//! they are used (`logits_rewrite`).

/// A field's payload.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Payload<'a> {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 1 (8 bytes) or 5 (4 bytes); ONNX's messages here carry none the rewrite reads.
    Fixed,
    /// Wire type 2: a string, bytes, a nested message or a packed repeated field.
    Bytes(&'a [u8]),
}

/// One field of a message.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Field<'a> {
    /// The field number.
    pub(crate) number: u32,
    /// The value.
    pub(crate) payload: Payload<'a>,
    /// The whole field as it is encoded, tag included (what a copy writes back).
    pub(crate) raw: &'a [u8],
}

impl<'a> Field<'a> {
    /// The payload of a length-delimited field, else `None`.
    pub(crate) fn bytes(&self) -> Option<&'a [u8]> {
        match self.payload {
            Payload::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The payload as UTF-8 text (a `string` field), else `None`.
    pub(crate) fn text(&self) -> Option<&'a str> {
        std::str::from_utf8(self.bytes()?).ok()
    }

    /// The payload of a varint field, else `None`.
    pub(crate) fn varint(&self) -> Option<u64> {
        match self.payload {
            Payload::Varint(v) => Some(v),
            _ => None,
        }
    }
}

fn read_varint(buf: &[u8], pos: &mut usize) -> Result<u64, String> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *buf
            .get(*pos)
            .ok_or_else(|| "a varint runs past the end of its message".to_owned())?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("a varint longer than 10 bytes".to_owned())
}

/// The fields of one message, in order. Fails on malformed input (a truncated field, a
/// group, an unknown wire type); never reads out of bounds.
pub(crate) fn fields(buf: &[u8]) -> Result<Vec<Field<'_>>, String> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let start = pos;
        let tag = read_varint(buf, &mut pos)?;
        let number = u32::try_from(tag >> 3).map_err(|_| "a field number out of range")?;
        let take = |pos: &mut usize, n: usize| -> Result<&[u8], String> {
            let end = pos
                .checked_add(n)
                .filter(|&e| e <= buf.len())
                .ok_or_else(|| format!("field {number} runs past the end of its message"))?;
            let bytes = &buf[*pos..end];
            *pos = end;
            Ok(bytes)
        };
        let payload = match tag & 7 {
            0 => Payload::Varint(read_varint(buf, &mut pos)?),
            1 => {
                take(&mut pos, 8)?;
                Payload::Fixed
            }
            2 => {
                let len = read_varint(buf, &mut pos)?;
                let len = usize::try_from(len).map_err(|_| "a length out of range")?;
                Payload::Bytes(take(&mut pos, len)?)
            }
            5 => {
                take(&mut pos, 4)?;
                Payload::Fixed
            }
            other => return Err(format!("field {number} has wire type {other}")),
        };
        if number == 0 {
            return Err("a field numbered 0".to_owned());
        }
        out.push(Field {
            number,
            payload,
            raw: &buf[start..pos],
        });
    }
    Ok(out)
}

/// Appends a varint.
pub(crate) fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Appends a varint field.
pub(crate) fn put_varint_field(out: &mut Vec<u8>, number: u32, value: u64) {
    put_varint(out, u64::from(number) << 3);
    put_varint(out, value);
}

/// Appends a length-delimited field (string, bytes or nested message).
pub(crate) fn put_bytes_field(out: &mut Vec<u8>, number: u32, bytes: &[u8]) {
    put_varint(out, (u64::from(number) << 3) | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Appends a nested message built by `build`.
pub(crate) fn put_message(out: &mut Vec<u8>, number: u32, build: impl FnOnce(&mut Vec<u8>)) {
    let mut inner = Vec::new();
    build(&mut inner);
    put_bytes_field(out, number, &inner);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_fields_read_back() {
        let mut msg = Vec::new();
        put_varint_field(&mut msg, 1, 300);
        put_bytes_field(&mut msg, 2, b"logits");
        put_message(&mut msg, 15, |m| put_varint_field(m, 3, u64::MAX));
        let f = fields(&msg).unwrap();
        assert_eq!(f.len(), 3);
        assert_eq!((f[0].number, f[0].varint()), (1, Some(300)));
        assert_eq!((f[1].number, f[1].text()), (2, Some("logits")));
        let inner = fields(f[2].bytes().unwrap()).unwrap();
        assert_eq!(inner[0].varint(), Some(u64::MAX));
        let joined: Vec<u8> = f.iter().flat_map(|x| x.raw.iter().copied()).collect();
        assert_eq!(joined, msg, "raw fields concatenate to the message");
    }

    #[test]
    fn malformed_messages_are_errors() {
        assert!(fields(&[0x0a, 0x05, b'a']).is_err(), "truncated bytes");
        assert!(fields(&[0x08]).is_err(), "truncated varint");
        assert!(fields(&[0x0b]).is_err(), "group");
        assert!(fields(&[0x00, 0x00]).is_err(), "field 0");
        let mut endless = vec![0x08];
        endless.extend([0xff; 11]);
        assert!(fields(&endless).is_err(), "a varint over 10 bytes");
        assert!(fields(&[0x0d, 1, 2]).is_err(), "truncated fixed32");
        assert!(fields(&[]).unwrap().is_empty());
    }
}
