//! Kafka's default partitioner for keyed records, bit for bit, so that a Java, librdkafka
//! (`murmur2_random`) or Rust client agrees with us on which partition a model's events live in.

/// Kafka's `Utils.murmur2` (murmur2, seed `0x9747b28c`), as a Java `int`.
#[must_use]
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;

    // Java truncates the length to an int; keys longer than 4 GiB are not a concern.
    #[expect(
        clippy::cast_possible_truncation,
        reason = "Java semantics: int length"
    )]
    let mut h: u32 = SEED ^ (data.len() as u32);

    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = chunk
            .iter()
            .rev()
            .fold(0_u32, |acc, &b| (acc << 8) | u32::from(b));
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }

    let tail = chunks.remainder();
    if !tail.is_empty() {
        // Java's fall-through switch: XOR in the remaining bytes little-endian, then multiply.
        let k = tail
            .iter()
            .rev()
            .fold(0_u32, |acc, &b| (acc << 8) | u32::from(b));
        h ^= k;
        h = h.wrapping_mul(M);
    }

    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    i32::from_ne_bytes(h.to_ne_bytes())
}

/// Partition of a keyed record: `toPositive(murmur2(key)) % partition_count`, as Kafka's
/// `BuiltInPartitioner.partitionForKey`. A non-positive count yields partition 0.
#[must_use]
pub fn partition_for(key: &[u8], partition_count: i32) -> i32 {
    if partition_count <= 0 {
        return 0;
    }
    (murmur2(key) & 0x7fff_ffff) % partition_count
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kafka's own `UtilsTest.testMurmur2` vectors, plus librdkafka's `rdmurmur2.c` unit test.
    #[test]
    fn murmur2_matches_kafka_vectors() {
        let cases: &[(&[u8], i32)] = &[
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
            (b"1", -1_993_445_489),
            (b"12", 126_087_238),
            (b"123", -267_702_483),
            (b"1234", -1_614_185_708),
            (b"12345", -1_188_365_604),
            (b"kafka", i32::from_ne_bytes(0xd067_cf64_u32.to_ne_bytes())),
        ];
        for (key, expected) in cases {
            assert_eq!(
                murmur2(key),
                *expected,
                "key {:?}",
                String::from_utf8_lossy(key)
            );
        }
    }

    #[test]
    fn partition_is_positive_hash_modulo_count() {
        // murmur2("21") = -973932308; & 0x7fffffff = 1173551340.
        assert_eq!(partition_for(b"21", 3), 1_173_551_340 % 3);
        assert_eq!(partition_for(b"21", 1), 0);
        for n in 1..=64 {
            let p = partition_for(b"openai/gpt-5", n);
            assert!((0..n).contains(&p), "partition {p} out of 0..{n}");
        }
    }

    #[test]
    fn partition_of_degenerate_count_is_zero() {
        assert_eq!(partition_for(b"x", 0), 0);
        assert_eq!(partition_for(b"x", -4), 0);
    }

    /// Values computed with Kafka's Java `Utils.murmur2` (copied verbatim, run on a JVM): the
    /// empty key and bytes >= 0x80, where a sign-extension slip would show.
    #[test]
    fn murmur2_matches_java_on_edge_inputs() {
        assert_eq!(murmur2(b""), 275_646_681);
        assert_eq!(
            murmur2("\u{e9}\u{e8}\u{ff}\u{80}".as_bytes()),
            -1_322_674_157
        );
    }

    /// Partitions computed with Java's `toPositive(murmur2(key)) % 12`.
    #[test]
    fn partition_matches_java_for_model_ids() {
        assert_eq!(partition_for(b"openai/gpt-5", 12), 8);
        assert_eq!(partition_for(b"anthropic/claude-4", 12), 1);
        assert_eq!(partition_for(b"kafka", 12), 4);
        assert_eq!(partition_for(b"kafka", 3), 1);
    }
}
