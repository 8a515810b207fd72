//! A small deterministic generator (xorshift64), shared by the benchmarks and the tests that need
//! repeatable randomness: a run can be replayed from its seed.
pub struct Rng(pub u64);

impl Rng {
    /// A number in 0..n.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}
