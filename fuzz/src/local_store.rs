//! The kiosk's local state after a crash, a full disk or a bad SD card: the outbox database
//! (`kiosk::outbox::LocalStore`) and the encrypted gallery cache (`kiosk::gallery_cache`),
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
    let Ok(mut store) = kiosk::outbox::LocalStore::open(&path) else {
        return;
    };
    if let Ok(c) = store.counts() {
        assert!(c.pending >= 0 && c.delivered >= 0, "{c:?}");
    }
    let _ = store.next_pending();
    let _ = store.balances_known();
    let _ = store.balance(1);
    let _ = store.unsettled_offline_fen(1);
    let _ = store.meal_taken(1, "2026-01-01", "lunch");
    let _ = store.local_waste_averages(Some(1));
    // The drain reads every pending item's stored body; what an answer teaches is applied
    // from it (a declined charge the kiosk served queues a follow-up). A damaged item must
    // give an error or be set aside, never crash the kiosk or loop: the first few items are
    // answered "declined", then the backend is unreachable.
    let declined = r#"{"status":"declined","charge_id":null,"reason":"meal_already_taken","meal":"lunch","local_date":"2026-01-01","amount":"0.00","subsidy_used":"0.00","cash_used":"0.00","cash_balance":"1.00","subsidy_balance":"0.00","replayed":false}"#;
    let mut sent = 0;
    let mut delivered = Vec::new();
    let _ = store.drain(
        || 0,
        |item| {
            sent += 1;
            if sent <= 8 {
                assert!(
                    !delivered.contains(&item.seq),
                    "item {} was answered and is sent again",
                    item.seq
                );
                delivered.push(item.seq);
                kiosk::outbox::Delivery::Delivered(declined.to_string())
            } else {
                kiosk::outbox::Delivery::Unreachable("fuzz: backend unreachable".into())
            }
        },
    );
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
