//! The kiosk's local state after a crash, a full disk or a bad SD card: the local database
//! (`kiosk::local_store::LocalStore`: outbox, meals, balances, allowance, waste log) and the encrypted gallery cache (`kiosk::gallery_cache`),
//! opened from whatever bytes are in the file. Opening a damaged file must give a typed
//! error or a working store, never a panic; a store that opened must answer its read paths
//! (what `kiosk outbox` and the sync thread call first) with values or errors.

use std::io::Write;

/// Input: the first byte picks the file (even: the outbox database, odd: the gallery cache),
/// the rest is the file's content.
pub fn local_store(data: &[u8]) {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    if which & 1 == 0 {
        outbox(dir.path(), bytes);
    } else {
        gallery(dir.path(), bytes);
    }
}

fn outbox(dir: &std::path::Path, bytes: &[u8]) {
    let path = dir.join("outbox.db");
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(bytes))
        .expect("writing the damaged file");
    let Ok(mut store) = kiosk::local_store::LocalStore::open(&path) else {
        return;
    };
    if let Ok(c) = store.counts() {
        assert!(
            c.pending >= 0 && c.delivered >= 0 && c.rejected >= 0 && c.derived >= 0,
            "{c:?}"
        );
    }
    let slot = ledger::meal::MealSlot {
        meal: ledger::MealKind::Lunch,
        local_date: time::macros::date!(2026 - 01 - 01),
    };
    let _ = store.next_pending();
    let _ = store.balances_known();
    let _ = store.balance(1);
    let _ = store.person(1);
    let _ = store.unsettled_offline_fen(1);
    let _ = store.meal_taken(1, &slot);
    let _ = store.meal_charge(1, &slot);
    let _ = store.local_waste_averages(Some(1));
    // The drain reads every pending item's stored body; what an answer teaches is applied
    // from it (a declined charge the kiosk served queues a follow-up, an accepted one it
    // refused queues a void), as `kiosk::courier` does. A damaged item must give an error or
    // be set aside, never crash the kiosk or loop: the first few items are answered, then the
    // backend is unreachable.
    let mut sent = 0;
    let mut delivered = Vec::new();
    if let Ok(report) = store.drain_report(
        || 0,
        |item| {
            sent += 1;
            if sent > 8 {
                return kiosk::local_store::Delivery::Unreachable("fuzz: unreachable".into());
            }
            assert!(
                !delivered.contains(&item.seq),
                "item {} was answered and is sent again",
                item.seq
            );
            delivered.push(item.seq);
            kiosk::local_store::Delivery::Delivered(answer_to(&item.request, sent))
        },
    ) {
        let _ = kiosk::courier::follow_up_events(&report.done);
        for (item, _) in &report.done {
            let _ = store.charge_state(&item.idempotency_key);
        }
    }
    let _ = store.counts();
}

/// A plausible backend answer to `request`: charges alternate between declined and accepted.
fn answer_to(request: &kiosk::local_store::Request, n: usize) -> kiosk::local_store::Answer {
    use kiosk::local_store::{Answer, Request};
    let charge = |status: &str, id: &str| {
        format!(
            r#"{{"status":"{status}","charge_id":{id},"reason":"meal_already_taken","meal":"lunch","local_date":"2026-01-01","amount":"0.00","subsidy_used":"0.00","cash_used":"0.00","cash_balance":"1.00","subsidy_balance":"0.00","replayed":false}}"#
        )
    };
    match request {
        Request::Charge(_) => {
            let json = if n % 2 == 1 {
                charge("declined", "null")
            } else {
                charge("accepted", &n.to_string())
            };
            Answer::Charge(serde_json::from_str(&json).expect("a charge answer"))
        }
        Request::Waste(_) => Answer::Waste(
            serde_json::from_str(r#"{"id":1,"net_grams":0,"replayed":false}"#)
                .expect("a waste answer"),
        ),
        Request::Void(_) => Answer::Void(
            serde_json::from_str(
                r#"{"charge_id":1,"refund_id":1,"amount":"1.00","already_void":false}"#,
            )
            .expect("a void answer"),
        ),
    }
}

fn gallery(dir: &std::path::Path, bytes: &[u8]) {
    let path = dir.join("gallery.bin");
    std::fs::write(&path, bytes).expect("writing the damaged file");
    // A fixed key: damaged bytes fail authentication; the fuzzer cannot forge a tag, so the
    // JSON behind it is fuzzed separately below, as a file that decrypted would hold.
    let cache = kiosk::gallery_cache::GalleryCache::new(path, &[7u8; 32]);
    let _ = cache.load();
    if let Ok(state) = serde_json::from_slice::<kiosk::gallery_cache::GalleryState>(bytes) {
        let _ = state.to_gallery();
    }
}
