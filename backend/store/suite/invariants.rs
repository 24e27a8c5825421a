//! Double-entry invariants under random operation sequences, on the real database (proptest).

use super::*;

// ---- double-entry invariants under random operation sequences, on the real database ----------

#[derive(Clone, Debug)]
enum Op {
    TopUp(usize, i64),
    Charge(usize, u8, bool),
    Reverse(usize),
    Grant,
    Offboard(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0usize..3, 1i64..5000).prop_map(|(p, a)| Op::TopUp(p, a)),
        (0usize..3, 0u8..3, any::<bool>()).prop_map(|(p, m, off)| Op::Charge(p, m, off)),
        (0usize..50).prop_map(Op::Reverse),
        Just(Op::Grant),
        (0usize..3).prop_map(Op::Offboard),
    ]
}

async fn run_ops(ops: Vec<Op>) {
    let Some(db) = fresh().await else { return };
    let f = fixture(&db, Some(4000)).await;
    f.store
        .set_subsidy_rule(
            SubsidyRule {
                category: "regular".into(),
                amount: Fen(700),
                expires: true,
            },
            &ADMIN,
        )
        .await
        .unwrap();
    let mut people = Vec::new();
    for i in 0..3 {
        people.push(f.person(&format!("P{i}"), 0).await);
    }
    let mut model_cash = [0i64; 3];
    let mut n = 0;
    let mut period = 0;
    for op in ops {
        n += 1;
        match op {
            Op::TopUp(i, a) => {
                if f.store.get_staff(people[i]).await.unwrap().active {
                    f.top_up(people[i], a).await;
                    model_cash[i] += a;
                }
            }
            Op::Charge(i, meal, offline) => {
                let at =
                    LUNCH + [-(4 * 3600 * 1000 + 20 * 60_000), 0, 6 * 3600 * 1000][meal as usize];
                let mut c = f.cmd(&format!("op{n}"), people[i], at);
                c.offline = offline;
                let r = f.store.charge(c).await.unwrap();
                if r.outcome == ChargeOutcome::Accepted {
                    model_cash[i] -= r.cash.0;
                }
            }
            Op::Reverse(k) => {
                let cs = f
                    .store
                    .list_charges(ChargeFilter {
                        status: Some(ChargeStatus::Accepted),
                        limit: 1000,
                        ..Default::default()
                    })
                    .await
                    .unwrap();
                if !cs.is_empty() {
                    let c = &cs[k % cs.len()];
                    f.store
                        .reverse_charge(c.id, "prop", LUNCH, &ADMIN)
                        .await
                        .unwrap();
                    let i = people.iter().position(|p| *p == c.staff_id).unwrap();
                    model_cash[i] += c.cash.0;
                }
            }
            Op::Grant => {
                period += 1;
                f.store
                    .grant_subsidies(&format!("2027-{:02}", (period % 12) + 1), LUNCH, &ADMIN)
                    .await
                    .unwrap();
            }
            Op::Offboard(i) => {
                if f.store.get_staff(people[i]).await.unwrap().active {
                    f.store
                        .offboard_staff(people[i], LUNCH, &ADMIN)
                        .await
                        .unwrap();
                    model_cash[i] = 0;
                }
            }
        }
        for (i, p) in people.iter().enumerate() {
            let b = f.store.balances(*p).await.unwrap();
            assert!(b.cash.0 >= 0 && b.subsidy.0 >= 0);
            assert_eq!(b.cash.0, model_cash[i], "cash of person {i} after {n} ops");
        }
    }
    f.assert_check_ok().await;
    db.teardown().await;
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]
    #[test]
    fn double_entry_invariants_hold_on_the_database(ops in prop::collection::vec(op(), 1..40)) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(run_ops(ops));
    }
}
