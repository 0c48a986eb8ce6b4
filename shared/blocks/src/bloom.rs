//! The trace-id bloom filter of a block: about 0.02% false positives, so a trace-by-ID lookup
//! skips nearly every block that does not hold the trace without reading it. A false positive
//! costs a read of a row group; at 1% (Tempo's default, 10 bits per trace) a lookup among 100
//! large blocks read one extra row group about every time, which doubled its time
//! (BENCHMARKS.md), while 20 bits cost 2.5 bytes per trace, a fraction of a byte per span.
//! Layout: magic `TBF1`, k (u32 LE), m in bits (u64 LE), then the bit array.

const MAGIC: &[u8; 4] = b"TBF1";
const K: u32 = 7;
/// Bits per element: with `K` hashes, (1 − e^(−7/20))^7 ≈ 0.02% false positives.
const BITS_PER_ITEM: u64 = 20;

/// A bloom filter over 16-byte trace ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bloom {
    k: u32,
    bits: Vec<u8>,
}

fn hashes(trace_id: &[u8; 16]) -> (u64, u64) {
    // FNV-1a over the id, then a second mix for double hashing; ids from some clients have
    // zero high bytes, so the raw bits are not used directly.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in trace_id {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let mut h2 = h ^ (h >> 33);
    h2 = h2.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h2 ^= h2 >> 33;
    (h, h2 | 1)
}

impl Bloom {
    /// An empty filter sized for `items` trace ids.
    pub fn with_capacity(items: usize) -> Self {
        let m = (items as u64 * BITS_PER_ITEM).max(64);
        Bloom {
            k: K,
            bits: vec![0; m.div_ceil(8) as usize],
        }
    }

    fn m(&self) -> u64 {
        self.bits.len() as u64 * 8
    }

    /// Adds a trace id.
    pub fn insert(&mut self, trace_id: &[u8; 16]) {
        let (h1, h2) = hashes(trace_id);
        let m = self.m();
        for i in 0..u64::from(self.k) {
            let bit = h1.wrapping_add(i.wrapping_mul(h2)) % m;
            self.bits[(bit / 8) as usize] |= 1 << (bit % 8);
        }
    }

    /// False when the trace id is certainly absent.
    pub fn may_contain(&self, trace_id: &[u8; 16]) -> bool {
        let (h1, h2) = hashes(trace_id);
        let m = self.m();
        (0..u64::from(self.k)).all(|i| {
            let bit = h1.wrapping_add(i.wrapping_mul(h2)) % m;
            self.bits[(bit / 8) as usize] & (1 << (bit % 8)) != 0
        })
    }

    /// Serialises the filter.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.bits.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.k.to_le_bytes());
        out.extend_from_slice(&self.m().to_le_bytes());
        out.extend_from_slice(&self.bits);
        out
    }

    /// Reads a serialised filter.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() < 16 || &bytes[..4] != MAGIC {
            return Err("not a Tempest bloom filter".into());
        }
        let k = u32::from_le_bytes(bytes[4..8].try_into().map_err(|_| "short header")?);
        let m = u64::from_le_bytes(bytes[8..16].try_into().map_err(|_| "short header")?);
        let bits = bytes[16..].to_vec();
        if k == 0 || k > 32 || m != bits.len() as u64 * 8 || m == 0 {
            return Err(format!(
                "inconsistent bloom header (k={k}, m={m}, {} bytes)",
                bits.len()
            ));
        }
        Ok(Bloom { k, bits })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_false_negatives_and_few_false_positives() {
        let ids: Vec<[u8; 16]> = (0..10_000u128)
            .map(|i| (i * 0x9e37_79b9_7f4a_7c15).to_be_bytes())
            .collect();
        let mut b = Bloom::with_capacity(ids.len());
        ids.iter().for_each(|id| b.insert(id));
        let b = Bloom::from_bytes(&b.to_bytes()).expect("round trip");
        assert!(ids.iter().all(|id| b.may_contain(id)));
        let fp = (1_000_000u128..1_010_000)
            .filter(|i| b.may_contain(&(i * 31).to_be_bytes()))
            .count();
        assert!(fp < 20, "false positive rate {fp}/10000");
        assert!(Bloom::from_bytes(b"TBF1\x07\0\0\0\xff\0\0\0\0\0\0\0").is_err());
    }
}
