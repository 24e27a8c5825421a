//! 1:N search of a probe embedding against every enrolled template, and the accept /
//! unknown / ambiguous decision the kiosk acts on. Templates live in one contiguous
//! row-major buffer (128 `f32` per row) that a single sequential pass reads, with a distance
//! kernel shaped so LLVM vectorises it; persons are ranked by their best template through a
//! k-sized buffer rather than a sort. Inserts and removals are O(1) amortised (removal
//! swap-removes a row) so the kiosk can apply enrolment changes as they arrive. Everything is
//! single-threaded on purpose: the kiosk has two cores and other work for them.

use std::collections::HashMap;
use std::hash::Hash;

use crate::error::Error;

/// Length of a dlib ResNet face descriptor.
pub const EMBEDDING_LEN: usize = 128;

/// Width of the accumulator array in the distance kernel: one AVX register (two SSE ones).
const LANES: usize = 8;

type Row = [f32; EMBEDDING_LEN];

/// When to accept the nearest person as the one in front of the camera.
///
/// Distances are Euclidean between dlib descriptors (same person typically below ~0.6).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MatchPolicy {
    /// Accept only if the best person's nearest template is at most this far from the probe.
    pub threshold: f32,
    /// Accept only if the second-best *person* is at least this much farther than the best;
    /// otherwise the match is refused as ambiguous (two look-alikes enrolled, or a probe
    /// halfway between two people).
    pub margin: f32,
}

impl MatchPolicy {
    /// A policy with checked values: both finite and non-negative.
    pub fn new(threshold: f32, margin: f32) -> Result<Self, Error> {
        if !(threshold.is_finite() && threshold >= 0.0) {
            return Err(Error::InvalidArgument(format!(
                "match threshold must be a finite non-negative distance, got {threshold}"
            )));
        }
        if !(margin.is_finite() && margin >= 0.0) {
            return Err(Error::InvalidArgument(format!(
                "match margin must be a finite non-negative distance, got {margin}"
            )));
        }
        Ok(Self { threshold, margin })
    }

    /// The verdict on a search whose nearest person is `best` away and whose second-best
    /// person (if anyone else is enrolled) is `second` away. Compared on the distances
    /// themselves (not squared) so a threshold of exactly the reported distance accepts;
    /// NaN refuses.
    pub fn judge(&self, best: f32, second: Option<f32>) -> Verdict {
        let within = matches!(
            best.partial_cmp(&self.threshold),
            Some(std::cmp::Ordering::Less | std::cmp::Ordering::Equal)
        );
        if !within {
            return Verdict::Unknown;
        }
        match second {
            // NaN margins refuse, like NaN distances.
            Some(second)
                if (second - best)
                    .partial_cmp(&self.margin)
                    .is_none_or(|o| o.is_lt()) =>
            {
                Verdict::Ambiguous
            }
            _ => Verdict::Accept,
        }
    }
}

/// What [`MatchPolicy::judge`] concluded from the two nearest distances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    /// Nobody within the threshold.
    Unknown,
    /// The nearest is within the threshold but the second-best person is too close behind.
    Ambiguous,
}

impl Default for MatchPolicy {
    /// The shipped operating point, the one source of truth the kiosk and the evaluation
    /// read: threshold 0.42 and margin 0.12 on mirrored descriptors
    /// (`pipeline::EmbeddingMode::Mirrored`, the pipeline's default). Chosen on LFW folds
    /// 8-10 (`lfw-A`: 1,781 people enrolled from one news photo each) as the point with the
    /// fewest false rejects among those with no false accept on 6,614 searches (2,416
    /// probes of enrolled people, and every photo searched with its own person left out,
    /// i.e. by a stranger): 0 false accepts (95 % upper bound 0.045 % per attempt) for
    /// 51 % false rejects of single unconstrained photos. Cross-validated by people the
    /// same rule gave 3 false accepts in 6,614 held-out searches, so no single-photo point
    /// of this embedder is safe with room to spare: the kiosk fuses several frames of a
    /// cooperative diner (`kiosk::decide`) to get its false rejects down. A false accept
    /// charges the wrong person; a false reject asks the diner to look again or show a pay
    /// code. The evidence, the DET curve and the commands: BENCHMARKS.md, "Accuracy".
    fn default() -> Self {
        Self {
            threshold: 0.42,
            margin: 0.12,
        }
    }
}

/// Whether a new template may join a person's templates (see
/// [`Gallery::check_new_template`]).
#[derive(Debug, Clone, PartialEq)]
pub enum TemplateCheck<K> {
    /// Nobody else is near it: enrol it.
    Fits,
    /// Searched as a probe, it would be accepted as `other` or be ambiguous with them:
    /// enrolling it would let this person be charged for `other` or the other way round.
    CloseToOther {
        other: K,
        distance: f32,
        /// Distance to the person's own nearest template, if they have any.
        own_distance: Option<f32>,
    },
    /// The person already has templates and this one does not look like them (beyond the
    /// policy's threshold): a wrong photo, or a wrong person.
    UnlikeOwn { own_distance: f32 },
}

/// One person in a search result: the key and the distance of their nearest template.
#[derive(Debug, Clone, PartialEq)]
pub struct PersonMatch<K> {
    pub key: K,
    /// Euclidean distance from the probe to this person's nearest template.
    pub distance: f32,
    /// Which template was nearest (useful for audit logs and template ageing).
    pub template_id: u64,
}

/// What [`Gallery::identify`] concluded.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision<K> {
    /// The best person is within the threshold and clearly ahead of everyone else.
    Accepted {
        key: K,
        distance: f32,
        template_id: u64,
        /// Distance of the second-best person minus `distance`; `f32::INFINITY` when nobody
        /// else is enrolled.
        margin: f32,
    },
    /// Nobody is within the threshold.
    Unknown { nearest_distance: f32 },
    /// The best person is within the threshold but another person is too close behind.
    Ambiguous {
        best: PersonMatch<K>,
        second: PersonMatch<K>,
    },
    /// No template is enrolled.
    Empty,
}

struct PersonSlot<K> {
    key: K,
    /// Template ids of this person, so removing a person touches only their rows.
    templates: Vec<u64>,
}

/// Enrolled templates of many persons, searchable 1:N. `K` is the person key (an account id).
pub struct Gallery<K> {
    /// All templates, contiguous, row-major; row `i` belongs to `row_person[i]` and has id
    /// `row_template[i]`. Parallel vectors keep the hot buffer free of anything but floats.
    rows: Vec<Row>,
    row_person: Vec<u32>,
    row_template: Vec<u64>,
    template_row: HashMap<u64, usize>,
    /// Person slots indexed by the `u32` stored per row; freed slots are reused.
    persons: Vec<Option<PersonSlot<K>>>,
    free_slots: Vec<u32>,
    person_slot: HashMap<K, u32>,
}

impl<K> std::fmt::Debug for Gallery<K> {
    /// Counts only: printing 100,000 embeddings into a log helps nobody.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gallery")
            .field("templates", &self.rows.len())
            .field("persons", &self.person_slot.len())
            .finish()
    }
}

impl<K> Default for Gallery<K> {
    fn default() -> Self {
        Self {
            rows: Vec::new(),
            row_person: Vec::new(),
            row_template: Vec::new(),
            template_row: HashMap::new(),
            persons: Vec::new(),
            free_slots: Vec::new(),
            person_slot: HashMap::new(),
        }
    }
}

impl<K: Clone + Eq + Hash> Gallery<K> {
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty gallery with room for `templates` rows without reallocating.
    pub fn with_capacity(templates: usize) -> Self {
        let mut g = Self::default();
        g.rows.reserve(templates);
        g.row_person.reserve(templates);
        g.row_template.reserve(templates);
        g.template_row.reserve(templates);
        g
    }

    /// Number of templates.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Number of distinct persons with at least one template.
    pub fn person_count(&self) -> usize {
        self.person_slot.len()
    }

    /// The persons with at least one template, in no particular order.
    pub fn persons(&self) -> impl Iterator<Item = &K> + '_ {
        self.person_slot.keys()
    }

    pub fn contains_template(&self, template_id: u64) -> bool {
        self.template_row.contains_key(&template_id)
    }

    /// The person and embedding of a template.
    pub fn template(&self, template_id: u64) -> Option<(&K, &[f32])> {
        let row = *self.template_row.get(&template_id)?;
        let key = &self.slot(self.row_person[row]).key;
        Some((key, &self.rows[row][..]))
    }

    /// Template ids of one person (empty if the person is not enrolled).
    pub fn templates_of(&self, key: &K) -> &[u64] {
        match self.person_slot.get(key) {
            Some(&slot) => &self.slot(slot).templates,
            None => &[],
        }
    }

    /// All embeddings as one flat row-major slice (`len() * EMBEDDING_LEN` floats), e.g. to
    /// persist the gallery or to measure a plain read of the same memory in a benchmark.
    pub fn embeddings(&self) -> &[f32] {
        self.rows.as_flattened()
    }

    /// Adds or replaces template `template_id` for person `key`. Re-inserting an existing id
    /// replaces its embedding and, if `key` differs, moves it to the new person.
    pub fn insert(&mut self, key: K, template_id: u64, embedding: &[f32]) -> Result<(), Error> {
        let row = checked_embedding(embedding, "template")?;

        if let Some(&existing) = self.template_row.get(&template_id) {
            if self.slot(self.row_person[existing]).key == key {
                self.rows[existing] = row;
                return Ok(());
            }
            self.remove_template(template_id);
        }

        let slot = match self.person_slot.get(&key) {
            Some(&slot) => slot,
            None => self.new_slot(key)?,
        };
        self.slot_mut(slot).templates.push(template_id);
        self.template_row.insert(template_id, self.rows.len());
        self.rows.push(row);
        self.row_person.push(slot);
        self.row_template.push(template_id);
        Ok(())
    }

    /// Removes one template; returns whether it existed. A person whose last template goes
    /// is no longer enrolled.
    pub fn remove_template(&mut self, template_id: u64) -> bool {
        let Some(row) = self.template_row.remove(&template_id) else {
            return false;
        };
        let slot = self.row_person[row];
        self.swap_remove_row(row);

        let person = self.slot_mut(slot);
        if let Some(pos) = person.templates.iter().position(|&t| t == template_id) {
            person.templates.swap_remove(pos);
        }
        if person.templates.is_empty() {
            self.free_slot(slot);
        }
        true
    }

    /// Removes every template of a person; returns how many there were.
    pub fn remove_person(&mut self, key: &K) -> usize {
        let Some(&slot) = self.person_slot.get(key) else {
            return 0;
        };
        let templates = std::mem::take(&mut self.slot_mut(slot).templates);
        for id in &templates {
            if let Some(row) = self.template_row.remove(id) {
                self.swap_remove_row(row);
            }
        }
        self.free_slot(slot);
        templates.len()
    }

    /// The `k` nearest PERSONS (each ranked by their nearest template), nearest first.
    /// Fewer than `k` come back when fewer persons are enrolled.
    pub fn search(&self, probe: &[f32], k: usize) -> Result<Vec<PersonMatch<K>>, Error> {
        let probe = checked_embedding(probe, "probe")?;
        if k == 0 || self.rows.is_empty() {
            return Ok(Vec::new());
        }
        let mut top = TopPersons::new(k);
        scan(&probe, &self.rows, &self.row_person, &mut top);
        Ok(top
            .entries
            .iter()
            .map(|e| PersonMatch {
                key: self.slot(e.slot).key.clone(),
                distance: e.dist2.sqrt(),
                template_id: self.row_template[e.row],
            })
            .collect())
    }

    /// Decides whether the probe is an enrolled person, following `policy`. Several
    /// templates of the best person never count as the "second-best person".
    pub fn identify(&self, probe: &[f32], policy: &MatchPolicy) -> Result<Decision<K>, Error> {
        let mut top = self.search(probe, 2)?.into_iter();
        let Some(best) = top.next() else {
            return Ok(Decision::Empty);
        };
        let second = top.next();
        match policy.judge(best.distance, second.as_ref().map(|s| s.distance)) {
            Verdict::Unknown => Ok(Decision::Unknown {
                nearest_distance: best.distance,
            }),
            Verdict::Ambiguous => match second {
                Some(second) => Ok(Decision::Ambiguous { best, second }),
                None => Ok(Decision::Unknown {
                    nearest_distance: best.distance,
                }),
            },
            Verdict::Accept => Ok(Decision::Accepted {
                margin: second.map_or(f32::INFINITY, |s| s.distance - best.distance),
                key: best.key,
                distance: best.distance,
                template_id: best.template_id,
            }),
        }
    }

    /// Enrolment's guard: may `embedding` be enrolled as another template of `person`?
    /// Refused when, searched against everyone else, it would be accepted as another
    /// person or be ambiguous with one (the nearest other person within the threshold),
    /// when it matches the person's own templates but not by `margin` over anyone else's,
    /// or when it is farther than the threshold from all of the person's own templates.
    /// Pure: the caller (the backend's enrolment) decides what to answer.
    pub fn check_new_template(
        &self,
        person: &K,
        embedding: &[f32],
        policy: &MatchPolicy,
    ) -> Result<TemplateCheck<K>, Error> {
        // The person is at most one of the nearest two persons.
        let nearest = self.search(embedding, 2)?;
        let own_distance = nearest
            .iter()
            .find(|m| &m.key == person)
            .map(|m| m.distance);
        let other = nearest.into_iter().find(|m| &m.key != person);
        if let Some(other) = other {
            // The margin only matters for a template that matches its own person: one far
            // from everybody is unlike its own person (below), not "close" to whoever
            // happens to be nearest.
            let too_close = other.distance <= policy.threshold
                || own_distance.is_some_and(|own| {
                    policy.judge(own, None) != Verdict::Unknown
                        && (other.distance - own)
                            .partial_cmp(&policy.margin)
                            .is_none_or(|o| o.is_lt())
                });
            if too_close {
                return Ok(TemplateCheck::CloseToOther {
                    other: other.key,
                    distance: other.distance,
                    own_distance,
                });
            }
        }
        match own_distance {
            Some(own) if policy.judge(own, None) == Verdict::Unknown => {
                Ok(TemplateCheck::UnlikeOwn { own_distance: own })
            }
            _ => Ok(TemplateCheck::Fits),
        }
    }

    fn slot(&self, slot: u32) -> &PersonSlot<K> {
        // Invariant: every slot referenced by a row or by `person_slot` is occupied.
        self.persons[slot as usize]
            .as_ref()
            .expect("gallery invariant: occupied person slot")
    }

    fn slot_mut(&mut self, slot: u32) -> &mut PersonSlot<K> {
        self.persons[slot as usize]
            .as_mut()
            .expect("gallery invariant: occupied person slot")
    }

    fn new_slot(&mut self, key: K) -> Result<u32, Error> {
        let person = Some(PersonSlot {
            key: key.clone(),
            templates: Vec::new(),
        });
        let slot = match self.free_slots.pop() {
            Some(slot) => {
                self.persons[slot as usize] = person;
                slot
            }
            None => {
                let slot = u32::try_from(self.persons.len()).map_err(|_| {
                    Error::InvalidArgument("gallery holds more than 2^32 persons".into())
                })?;
                self.persons.push(person);
                slot
            }
        };
        self.person_slot.insert(key, slot);
        Ok(slot)
    }

    fn free_slot(&mut self, slot: u32) {
        if let Some(person) = self.persons[slot as usize].take() {
            self.person_slot.remove(&person.key);
            self.free_slots.push(slot);
        }
    }

    /// Removes row `row` by moving the last row into its place (the caller has already
    /// dropped `row`'s own id from `template_row`).
    fn swap_remove_row(&mut self, row: usize) {
        self.rows.swap_remove(row);
        self.row_person.swap_remove(row);
        self.row_template.swap_remove(row);
        if let Some(&moved) = self.row_template.get(row) {
            self.template_row.insert(moved, row);
        }
    }
}

/// Copies a 128-float embedding after checking its length and that every value is finite
/// (a NaN would compare false with everything and silently drop out of the ranking).
fn checked_embedding(embedding: &[f32], what: &str) -> Result<Row, Error> {
    let row: Row = embedding.try_into().map_err(|_| {
        Error::InvalidArgument(format!(
            "{what} embedding has {} values, expected {EMBEDDING_LEN}",
            embedding.len()
        ))
    })?;
    if let Some(i) = row.iter().position(|v| !v.is_finite()) {
        return Err(Error::InvalidArgument(format!(
            "{what} embedding value {i} is not finite ({})",
            row[i]
        )));
    }
    Ok(row)
}

/// Squared Euclidean distance, written for auto-vectorisation: an 8-lane accumulator over
/// 8-float chunks becomes one `vsubps/vmulps/vaddps` chain on AVX (two chains on SSE), and a
/// fixed reduction order makes the result identical whichever instruction set the loop is
/// compiled for. Measured alternatives were worse: two 8-lane or one 16-lane accumulator
/// make LLVM's SLP vectoriser fall back to 2-wide code (search 1.5-2x slower), and the add
/// chain of one row is no bottleneck because out-of-order execution overlaps the
/// independent rows.
#[inline(always)]
fn dist2(a: &Row, b: &Row) -> f32 {
    let mut acc = [0.0f32; LANES];
    for (ca, cb) in a.chunks_exact(LANES).zip(b.chunks_exact(LANES)) {
        for i in 0..LANES {
            let d = ca[i] - cb[i];
            acc[i] += d * d;
        }
    }
    acc.iter().sum()
}

/// Squared distance of the probe to every row, offered to `top`. This is the portable
/// version; on x86-64 with AVX2 the same code compiled for AVX2 is used instead.
fn scan_portable(probe: &Row, rows: &[Row], row_person: &[u32], top: &mut TopPersons) {
    scan_body(probe, rows, row_person, top);
}

#[inline(always)]
fn scan_body(probe: &Row, rows: &[Row], row_person: &[u32], top: &mut TopPersons) {
    let mut worst = top.worst();
    for (i, (row, &slot)) in rows.iter().zip(row_person).enumerate() {
        let d = dist2(probe, row);
        // Almost every row fails this one comparison, so the buffer logic stays off the
        // hot path.
        if d < worst {
            top.offer(slot, i, d);
            worst = top.worst();
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
// `unsafe fn` rather than a safe target-feature function keeps the crate within its declared
// rust-version (1.85).
unsafe fn scan_avx2(probe: &Row, rows: &[Row], row_person: &[u32], top: &mut TopPersons) {
    // Same source as the portable loop; only the instruction set differs (measured about 15%
    // faster than the SSE2 baseline build on this machine's Xeon). FMA is not
    // enabled, so the arithmetic (and thus every distance) is bit-identical to the portable
    // path, which the tests check.
    scan_body(probe, rows, row_person, top);
}

fn scan(probe: &Row, rows: &[Row], row_person: &[u32], top: &mut TopPersons) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above), the only requirement of a
            // `#[target_feature(enable = "avx2")]` function.
            unsafe { scan_avx2(probe, rows, row_person, top) };
            return;
        }
    }
    scan_portable(probe, rows, row_person, top);
}

#[derive(Debug, Clone, Copy)]
struct Candidate {
    slot: u32,
    row: usize,
    dist2: f32,
}

/// The k nearest distinct persons seen so far, sorted ascending by squared distance.
///
/// Correctness of keeping only k persons: a person is dropped only when k other persons are
/// already nearer; those only get nearer, so the dropped person cannot re-enter with a
/// distance it had before, and if one of its later templates is nearer it is offered anew.
struct TopPersons {
    k: usize,
    entries: Vec<Candidate>,
}

impl TopPersons {
    fn new(k: usize) -> Self {
        Self {
            k,
            entries: Vec::with_capacity(k.min(1024)),
        }
    }

    #[inline(always)]
    fn worst(&self) -> f32 {
        if self.entries.len() < self.k {
            f32::INFINITY
        } else {
            self.entries.last().map_or(f32::INFINITY, |e| e.dist2)
        }
    }

    #[inline(never)]
    fn offer(&mut self, slot: u32, row: usize, dist2: f32) {
        let mut pos = match self.entries.iter().position(|e| e.slot == slot) {
            Some(pos) => {
                if dist2 >= self.entries[pos].dist2 {
                    return;
                }
                self.entries[pos] = Candidate { slot, row, dist2 };
                pos
            }
            None if self.entries.len() < self.k => {
                self.entries.push(Candidate { slot, row, dist2 });
                self.entries.len() - 1
            }
            None => {
                let last = self.entries.len() - 1;
                if dist2 >= self.entries[last].dist2 {
                    return;
                }
                self.entries[last] = Candidate { slot, row, dist2 };
                last
            }
        };
        // Insertion step: the changed entry only ever moves towards the front.
        while pos > 0 && self.entries[pos - 1].dist2 > self.entries[pos].dist2 {
            self.entries.swap(pos - 1, pos);
            pos -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Small deterministic generator so tests need no extra dependency.
    struct SplitMix(u64);
    impl SplitMix {
        fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        fn unit(&mut self) -> f32 {
            (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        }
        fn embedding(&mut self) -> Vec<f32> {
            (0..EMBEDDING_LEN).map(|_| self.unit() * 0.13).collect()
        }
    }

    /// An embedding `offset` away from the origin along axis 0 (and zero elsewhere), so
    /// distances between such points are exact and easy to reason about.
    fn along(offset: f32) -> Vec<f32> {
        let mut v = vec![0.0; EMBEDDING_LEN];
        v[0] = offset;
        v
    }

    fn reference_dist(a: &[f32], b: &[f32]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
            .sum::<f64>()
            .sqrt()
    }

    /// Brute force: every person's nearest template, fully sorted.
    fn reference_search(g: &Gallery<u32>, probe: &[f32]) -> Vec<(u32, f64)> {
        let mut best: HashMap<u32, f64> = HashMap::new();
        for &key in g.persons() {
            for &id in g.templates_of(&key) {
                let (_, emb) = g.template(id).expect("template listed for person exists");
                let d = reference_dist(probe, emb);
                let e = best.entry(key).or_insert(f64::INFINITY);
                if d < *e {
                    *e = d;
                }
            }
        }
        let mut v: Vec<_> = best.into_iter().collect();
        v.sort_by(|a, b| a.1.total_cmp(&b.1));
        v
    }

    #[test]
    fn refuses_wrong_length_nan_and_inf() {
        let mut g = Gallery::new();
        for bad in [vec![0.0; 127], vec![0.0; 129], Vec::new()] {
            assert!(matches!(
                g.insert(1u32, 1, &bad),
                Err(Error::InvalidArgument(_))
            ));
            assert!(matches!(g.search(&bad, 1), Err(Error::InvalidArgument(_))));
        }
        for v in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let mut e = along(0.1);
            e[77] = v;
            assert!(matches!(
                g.insert(1u32, 1, &e),
                Err(Error::InvalidArgument(_))
            ));
            assert!(matches!(
                g.identify(&e, &MatchPolicy::default()),
                Err(Error::InvalidArgument(_))
            ));
        }
        assert!(
            g.is_empty(),
            "a refused insert must not leave anything behind"
        );
        assert!(MatchPolicy::new(f32::NAN, 0.05).is_err());
        assert!(MatchPolicy::new(0.5, -0.1).is_err());
        assert!(MatchPolicy::new(0.5, f32::INFINITY).is_err());
        assert_eq!(
            MatchPolicy::new(0.42, 0.12).ok(),
            Some(MatchPolicy::default())
        );
    }

    #[test]
    fn a_new_template_closer_to_someone_else_is_refused() {
        let mut g = Gallery::new();
        g.insert("ann", 1, &along(0.0)).unwrap();
        g.insert("bob", 2, &along(1.0)).unwrap();
        let policy = MatchPolicy {
            threshold: 0.4,
            margin: 0.1,
        };
        // Ann's second photo near her first: fine.
        assert_eq!(
            g.check_new_template(&"ann", &along(0.2), &policy).unwrap(),
            TemplateCheck::Fits
        );
        // A photo 0.35 from Bob would be accepted as Bob: refused for Ann.
        match g.check_new_template(&"ann", &along(0.65), &policy).unwrap() {
            TemplateCheck::CloseToOther {
                other,
                distance,
                own_distance,
            } => {
                assert_eq!(other, "bob");
                assert!((distance - 0.35).abs() < 1e-6);
                assert!((own_distance.unwrap() - 0.65).abs() < 1e-6);
            }
            c => panic!("expected a refusal, got {c:?}"),
        }
        // A first photo of Cat that Bob's template would take for Bob: refused too.
        assert!(matches!(
            g.check_new_template(&"cat", &along(1.3), &policy).unwrap(),
            TemplateCheck::CloseToOther { other: "bob", .. }
        ));
        // Matching her own template, but not by the margin over Bob's: refused.
        let wide = MatchPolicy {
            threshold: 0.45,
            margin: 0.3,
        };
        assert!(matches!(
            g.check_new_template(&"ann", &along(0.4), &wide).unwrap(),
            TemplateCheck::CloseToOther { other: "bob", .. }
        ));
        // Far from everyone, and from Ann's own template too: unlike her.
        g.insert("ann", 3, &along(-0.1)).unwrap();
        assert!(matches!(
            g.check_new_template(&"ann", &along(-0.6), &policy).unwrap(),
            TemplateCheck::UnlikeOwn { .. }
        ));
        // Far from everyone but nearer Bob than Ann: unlike Ann, not "close to Bob".
        assert!(matches!(
            g.check_new_template(&"ann", &along(2.0), &policy).unwrap(),
            TemplateCheck::UnlikeOwn { .. }
        ));
        // A first template far from everyone: fine; a bad embedding: an error.
        assert_eq!(
            g.check_new_template(&"dan", &along(-5.0), &policy).unwrap(),
            TemplateCheck::Fits
        );
        assert!(g.check_new_template(&"dan", &[0.0; 3], &policy).is_err());
    }

    #[test]
    fn empty_gallery() {
        let g: Gallery<u32> = Gallery::new();
        assert_eq!(
            g.identify(&along(0.0), &MatchPolicy::default()).ok(),
            Some(Decision::Empty)
        );
        assert_eq!(g.search(&along(0.0), 3).ok(), Some(vec![]));
    }

    #[test]
    fn threshold_is_inclusive_and_unknown_reports_nearest() {
        let mut g = Gallery::new();
        g.insert("ann", 1, &along(0.0)).unwrap();
        let policy = MatchPolicy {
            threshold: 0.25,
            margin: 0.05,
        };
        // 0.25 is exact in binary, so the distance is exactly the threshold.
        match g.identify(&along(0.25), &policy).unwrap() {
            Decision::Accepted {
                key,
                distance,
                margin,
                template_id,
            } => {
                assert_eq!((key, distance, template_id), ("ann", 0.25, 1));
                assert_eq!(margin, f32::INFINITY);
            }
            d => panic!("expected accept at exactly the threshold, got {d:?}"),
        }
        match g.identify(&along(0.3), &policy).unwrap() {
            Decision::Unknown { nearest_distance } => {
                assert!((nearest_distance - 0.3).abs() < 1e-6)
            }
            d => panic!("expected unknown, got {d:?}"),
        }
    }

    #[test]
    fn margin_between_persons() {
        let mut g = Gallery::new();
        g.insert("ann", 1, &along(0.0)).unwrap();
        g.insert("bob", 2, &along(1.0)).unwrap();
        let policy = MatchPolicy {
            threshold: 0.6,
            margin: 0.1,
        };
        // Probe at 0.3: ann 0.3, bob 0.7, margin 0.4 -> accepted.
        match g.identify(&along(0.3), &policy).unwrap() {
            Decision::Accepted { key, margin, .. } => {
                assert_eq!(key, "ann");
                assert!((margin - 0.4).abs() < 1e-6);
            }
            d => panic!("expected accept, got {d:?}"),
        }
        // Probe at 0.48: ann 0.48, bob 0.52, margin 0.04 < 0.1 -> ambiguous.
        match g.identify(&along(0.48), &policy).unwrap() {
            Decision::Ambiguous { best, second } => {
                assert_eq!((best.key, second.key), ("ann", "bob"));
                assert!(best.distance < second.distance);
            }
            d => panic!("expected ambiguous, got {d:?}"),
        }
    }

    #[test]
    fn templates_of_one_person_are_never_the_second_person() {
        let mut g = Gallery::new();
        // Ann has three nearly identical templates; Bob is far away.
        g.insert("ann", 1, &along(0.0)).unwrap();
        g.insert("ann", 2, &along(0.01)).unwrap();
        g.insert("ann", 3, &along(0.02)).unwrap();
        g.insert("bob", 4, &along(2.0)).unwrap();
        let policy = MatchPolicy {
            threshold: 0.6,
            margin: 0.1,
        };
        match g.identify(&along(0.015), &policy).unwrap() {
            Decision::Accepted {
                key,
                template_id,
                margin,
                ..
            } => {
                assert_eq!(key, "ann");
                assert!(template_id == 2 || template_id == 3);
                assert!(margin > 1.9, "margin must be measured to bob, got {margin}");
            }
            d => panic!("expected accept, got {d:?}"),
        }
        let top = g.search(&along(0.015), 5).unwrap();
        let keys: Vec<_> = top.iter().map(|m| m.key).collect();
        assert_eq!(keys, vec!["ann", "bob"]);
    }

    #[test]
    fn removal_and_replacement() {
        let mut g = Gallery::new();
        g.insert("ann", 1, &along(0.0)).unwrap();
        g.insert("ann", 2, &along(0.1)).unwrap();
        g.insert("bob", 3, &along(0.2)).unwrap();
        g.insert("cat", 4, &along(5.0)).unwrap();
        assert_eq!((g.len(), g.person_count()), (4, 3));

        // Removing ann's nearest template leaves her other one.
        assert!(g.remove_template(1));
        assert!(!g.remove_template(1));
        let top = g.search(&along(0.0), 1).unwrap();
        assert_eq!((top[0].key, top[0].template_id), ("ann", 2));

        // Removing ann entirely makes bob the nearest.
        assert_eq!(g.remove_person(&"ann"), 1);
        assert_eq!(g.remove_person(&"ann"), 0);
        assert_eq!((g.len(), g.person_count()), (2, 2));
        assert_eq!(g.search(&along(0.0), 1).unwrap()[0].key, "bob");
        assert!(g.persons().all(|&k| k != "ann"));

        // Re-inserting an id replaces it, also across persons.
        g.insert("cat", 3, &along(0.05)).unwrap();
        assert_eq!(
            (g.len(), g.person_count()),
            (2, 1),
            "bob lost his only template"
        );
        assert_eq!(g.templates_of(&"cat").len(), 2);
        let m = &g.search(&along(0.0), 1).unwrap()[0];
        assert_eq!((m.key, m.template_id), ("cat", 3));
        g.insert("cat", 3, &along(0.5)).unwrap();
        assert_eq!(g.len(), 2);
        assert_eq!(g.template(3).map(|(_, e)| e[0]), Some(0.5));

        assert_eq!(g.remove_person(&"cat"), 2);
        assert!(g.is_empty());
        assert_eq!(
            g.identify(&along(0.0), &MatchPolicy::default()).ok(),
            Some(Decision::Empty)
        );
    }

    #[test]
    fn avx2_and_portable_scans_agree_bit_for_bit() {
        let mut rng = SplitMix(7);
        let rows: Vec<Row> = (0..3000)
            .map(|_| rng.embedding().try_into().expect("128 values"))
            .collect();
        let persons: Vec<u32> = (0..3000).map(|i| i / 3).collect();
        let probe: Row = rng.embedding().try_into().expect("128 values");
        let mut a = TopPersons::new(50);
        scan(&probe, &rows, &persons, &mut a);
        let mut b = TopPersons::new(50);
        scan_portable(&probe, &rows, &persons, &mut b);
        let key = |t: &TopPersons| -> Vec<(u32, usize, u32)> {
            t.entries
                .iter()
                .map(|e| (e.slot, e.row, e.dist2.to_bits()))
                .collect()
        };
        assert_eq!(key(&a), key(&b));
        // And both agree with a plain f64 computation.
        for e in &a.entries {
            let r = reference_dist(&probe, &rows[e.row]);
            assert!((f64::from(e.dist2.sqrt()) - r).abs() < 1e-5);
        }
    }

    /// A random gallery: persons 0..n_persons, each with 1..=4 templates, some templates
    /// removed again and some re-inserted under another person, to exercise swap-removal.
    fn random_gallery(seed: u64, n_persons: u32) -> Gallery<u32> {
        let mut rng = SplitMix(seed);
        let mut g = Gallery::new();
        let mut id = 0u64;
        for p in 0..n_persons {
            let n = 1 + rng.next_u64() % 4;
            for _ in 0..n {
                g.insert(p, id, &rng.embedding()).unwrap();
                id += 1;
            }
        }
        for _ in 0..id / 4 {
            let victim = rng.next_u64() % id.max(1);
            match rng.next_u64() % 3 {
                0 => {
                    g.remove_template(victim);
                }
                1 => {
                    let p = (rng.next_u64() % u64::from(n_persons)) as u32;
                    g.insert(p, victim, &rng.embedding()).unwrap();
                }
                _ => {
                    let p = (rng.next_u64() % u64::from(n_persons)) as u32;
                    g.remove_person(&p);
                }
            }
        }
        g
    }

    fn check_consistency(g: &Gallery<u32>) {
        let mut total = 0;
        for &k in g.persons() {
            let ids = g.templates_of(&k);
            assert!(!ids.is_empty());
            for &id in ids {
                assert_eq!(g.template(id).map(|(key, _)| *key), Some(k));
            }
            total += ids.len();
        }
        assert_eq!(total, g.len());
        assert_eq!(g.embeddings().len(), g.len() * EMBEDDING_LEN);
    }

    proptest! {
        #[test]
        fn search_equals_brute_force(seed in any::<u64>(), n_persons in 1u32..60, k in 1usize..12) {
            let g = random_gallery(seed, n_persons);
            check_consistency(&g);
            let probe = SplitMix(seed ^ 0xABCD).embedding();
            let got = g.search(&probe, k).unwrap();
            let want = reference_search(&g, &probe);
            prop_assert_eq!(got.len(), k.min(want.len()));
            let want_of: HashMap<u32, f64> = want.iter().copied().collect();
            for (i, m) in got.iter().enumerate() {
                // Same rank distances (robust to near-ties between persons)...
                prop_assert!((f64::from(m.distance) - want[i].1).abs() < 1e-5,
                    "rank {} distance {} vs reference {}", i, m.distance, want[i].1);
                // ...and each returned person's distance is truly that person's best.
                let wd = want_of.get(&m.key).copied().unwrap_or(f64::NAN);
                prop_assert!((f64::from(m.distance) - wd).abs() < 1e-5);
                let (key, emb) = g.template(m.template_id).unwrap();
                prop_assert_eq!(*key, m.key);
                prop_assert!((reference_dist(&probe, emb) - wd).abs() < 1e-5);
                if i > 0 {
                    prop_assert!(got[i - 1].distance <= m.distance);
                    prop_assert!(got[..i].iter().all(|o| o.key != m.key), "person repeated");
                }
            }
        }

        #[test]
        fn identify_follows_the_policy(seed in any::<u64>(), n_persons in 1u32..30,
                                       threshold in 0.0f32..2.0, margin in 0.0f32..0.5) {
            let g = random_gallery(seed, n_persons);
            let probe = SplitMix(seed.rotate_left(17)).embedding();
            let policy = MatchPolicy { threshold, margin };
            let want = reference_search(&g, &probe);
            let decision = g.identify(&probe, &policy).unwrap();
            match (want.first(), decision) {
                (None, Decision::Empty) => {}
                (Some(&(best, d)), Decision::Accepted { key, distance, margin: m, .. }) => {
                    prop_assert_eq!(key, best);
                    prop_assert!((f64::from(distance) - d).abs() < 1e-5);
                    prop_assert!(distance <= threshold);
                    match want.get(1) {
                        Some(&(_, d2)) => {
                            prop_assert!((f64::from(m) - (d2 - d)).abs() < 1e-5);
                            prop_assert!(m >= margin);
                        }
                        None => prop_assert_eq!(m, f32::INFINITY),
                    }
                }
                (Some(&(_, d)), Decision::Unknown { nearest_distance }) => {
                    prop_assert!((f64::from(nearest_distance) - d).abs() < 1e-5);
                    prop_assert!(nearest_distance > threshold);
                }
                (Some(&(_, d)), Decision::Ambiguous { best, second }) => {
                    prop_assert!((f64::from(best.distance) - d).abs() < 1e-5);
                    prop_assert!(best.distance <= threshold);
                    prop_assert_ne!(best.key, second.key);
                    prop_assert!(second.distance - best.distance < margin);
                    prop_assert!((f64::from(second.distance) - want[1].1).abs() < 1e-5);
                }
                (w, d) => prop_assert!(false, "reference {:?} but decision {:?}", w, d),
            }
        }
    }
}
