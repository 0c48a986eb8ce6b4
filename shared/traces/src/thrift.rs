//! A small, defensive reader of Thrift's binary protocol into a generic value tree: enough to
//! decode Jaeger's `Batch` without generated code. Every length is checked against the bytes
//! left and nesting is bounded, so hostile input is an error, never a panic or a huge allocation.

use crate::DecodeError;

/// A decoded Thrift value.
#[derive(Debug, Clone, PartialEq)]
pub enum TValue {
    /// bool
    Bool(bool),
    /// byte, i16, i32, i64
    Int(i64),
    /// double
    Double(f64),
    /// string or binary
    Bytes(Vec<u8>),
    /// struct: (field id, value) in wire order
    Struct(Vec<(i16, TValue)>),
    /// list or set
    List(Vec<TValue>),
    /// map
    Map(Vec<(TValue, TValue)>),
}

impl TValue {
    /// Field `id` of a struct.
    pub fn field(&self, id: i16) -> Option<&TValue> {
        match self {
            TValue::Struct(fields) => fields.iter().find(|(f, _)| *f == id).map(|(_, v)| v),
            _ => None,
        }
    }

    /// As an integer.
    pub fn int(&self) -> Option<i64> {
        match self {
            TValue::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// As UTF-8 text (lossy).
    pub fn text(&self) -> Option<String> {
        match self {
            TValue::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }

    /// As a list.
    pub fn list(&self) -> &[TValue] {
        match self {
            TValue::List(items) => items,
            _ => &[],
        }
    }
}

const MAX_DEPTH: usize = 32;

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

fn malformed(msg: impl Into<String>) -> DecodeError {
    DecodeError::Malformed(msg.into())
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or_else(|| malformed(format!("truncated Thrift payload at byte {}", self.pos)))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn i16(&mut self) -> Result<i16, DecodeError> {
        Ok(i16::from_be_bytes(
            self.take(2)?.try_into().map_err(|_| malformed("i16"))?,
        ))
    }

    fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(
            self.take(4)?.try_into().map_err(|_| malformed("i32"))?,
        ))
    }

    fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(
            self.take(8)?.try_into().map_err(|_| malformed("i64"))?,
        ))
    }

    /// A collection size: non-negative and, with at least one byte per element, no larger than
    /// what is left.
    fn size(&mut self) -> Result<usize, DecodeError> {
        let n = self.i32()?;
        let n = usize::try_from(n).map_err(|_| malformed(format!("negative size {n}")))?;
        if n > self.buf.len() - self.pos {
            return Err(malformed(format!(
                "size {n} exceeds the {} bytes left",
                self.buf.len() - self.pos
            )));
        }
        Ok(n)
    }

    fn value(&mut self, ty: u8, depth: usize) -> Result<TValue, DecodeError> {
        if depth > MAX_DEPTH {
            return Err(malformed("Thrift values nested too deeply"));
        }
        Ok(match ty {
            2 => TValue::Bool(self.u8()? != 0),
            3 => TValue::Int(i64::from(self.u8()? as i8)),
            4 => TValue::Double(f64::from_bits(self.i64()? as u64)),
            6 => TValue::Int(i64::from(self.i16()?)),
            8 => TValue::Int(i64::from(self.i32()?)),
            10 => TValue::Int(self.i64()?),
            11 => {
                let n = self.size()?;
                TValue::Bytes(self.take(n)?.to_vec())
            }
            12 => self.structure(depth + 1)?,
            13 => {
                let (kt, vt) = (self.u8()?, self.u8()?);
                let n = self.size()?;
                let mut m = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    m.push((self.value(kt, depth + 1)?, self.value(vt, depth + 1)?));
                }
                TValue::Map(m)
            }
            14 | 15 => {
                let et = self.u8()?;
                let n = self.size()?;
                let mut l = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    l.push(self.value(et, depth + 1)?);
                }
                TValue::List(l)
            }
            other => {
                return Err(malformed(format!(
                    "unknown Thrift type {other} at byte {}",
                    self.pos
                )));
            }
        })
    }

    fn structure(&mut self, depth: usize) -> Result<TValue, DecodeError> {
        let mut fields = Vec::new();
        loop {
            let ty = self.u8()?;
            if ty == 0 {
                return Ok(TValue::Struct(fields));
            }
            let id = self.i16()?;
            fields.push((id, self.value(ty, depth)?));
        }
    }
}

/// Reads one struct from the binary protocol; trailing bytes are an error.
pub fn read_struct(buf: &[u8]) -> Result<TValue, DecodeError> {
    let mut r = Reader { buf, pos: 0 };
    let v = r.structure(0)?;
    if r.pos != buf.len() {
        return Err(malformed(format!(
            "{} unexpected bytes after the Thrift struct",
            buf.len() - r.pos
        )));
    }
    Ok(v)
}
