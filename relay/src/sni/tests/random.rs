//! Random and mutated bytes: never a panic, and the same answer however they arrive.

use super::*;

/// A small deterministic generator, so failures replay exactly.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn byte(&mut self) -> u8 {
        self.next() as u8
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.byte()).collect()
    }
}

fn sample_cuts(rng: &mut XorShift, len: usize) -> Vec<usize> {
    let mut cuts: Vec<usize> = (0..12).map(|_| rng.below(len + 1)).collect();
    cuts.extend([0, 1, 5, 6, 9, len.saturating_sub(1)]);
    cuts
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for i in 0..20_000 {
        let len = rng.below(700);
        let mut buf = rng.bytes(len);
        // Most inputs get a plausible start so the deeper parsing gets exercised.
        let starts: [&[u8]; 4] = [&[], &[22], &[22, 3, 1], &[22, 3, 3, 1, 0, 1]];
        let start = starts[i % starts.len()];
        let n = start.len().min(buf.len());
        buf[..n].copy_from_slice(&start[..n]);
        if i % 3 == 0 && buf.len() >= 9 {
            // A record and hello length that match the buffer.
            let rec = (buf.len() - 5) as u16;
            buf[3..5].copy_from_slice(&rec.to_be_bytes());
            buf[5] = 1;
            let hs = (buf.len() - 9) as u32;
            buf[6..9].copy_from_slice(&hs.to_be_bytes()[1..]);
        }
        let cuts = sample_cuts(&mut rng, buf.len());
        assert_consistent(&buf, cuts);
    }
}

#[test]
fn mutated_hellos_never_panic() {
    let seeds: Vec<Vec<u8>> = vec![
        Builder::sni("a.example").wire(),
        Builder::default()
            .ext(GREASE, vec![])
            .ext(EXT_ALPN, alpn_data(&[b"h2", b"http/1.1"]))
            .ext(EXT_SERVER_NAME, sni_data(b"Mixed.Case.Example"))
            .ext(SUPPORTED_VERSIONS, vec![4, 3, 4, 3, 3])
            .wire(),
        frame(&Builder::sni("split.example").handshake(), 17),
        Builder {
            extensions: None,
            ..Builder::default()
        }
        .wire(),
        Builder::default()
            .ext(KEY_SHARE, pq_key_share())
            .ext(EXT_SERVER_NAME, sni_data(b"pq.example"))
            .wire(),
    ];
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    for i in 0..8_000 {
        let mut buf = seeds[i % seeds.len()].clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(buf.len());
            match rng.below(7) {
                0 => buf[at] ^= 1 << rng.below(8),
                1 => buf[at] = rng.byte(),
                2 => buf[at] = [0, 1, 0x7f, 0x80, 0xff][rng.below(5)],
                3 => buf.truncate(at),
                4 => {
                    let n = 1 + rng.below(8);
                    let extra = rng.bytes(n);
                    buf.splice(at..at, extra);
                }
                5 => {
                    let end = (at + 1 + rng.below(8)).min(buf.len());
                    buf.drain(at..end);
                }
                _ => {
                    let end = (at + 1 + rng.below(16)).min(buf.len());
                    let chunk = buf[at..end].to_vec();
                    buf.splice(at..at, chunk);
                }
            }
            if buf.is_empty() {
                break;
            }
        }
        let cuts = sample_cuts(&mut rng, buf.len());
        assert_consistent(&buf, cuts);
    }
}
