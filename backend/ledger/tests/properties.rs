//! Property tests of the double-entry rules: random sequences of top-ups, subsidy periods,
//! charges, reversals and cash-outs, applied to an in-memory book only through `ledger`'s
//! functions. Whatever the sequence, every entry balances, the whole book sums to zero, no
//! person's cash or subsidy goes negative, and daily caps and meal counts hold.

use ledger::charge::{decide_charge, ChargeFacts};
use ledger::posting::{BookAccount, EntryKind, ProposedEntry};
use ledger::{Fen, MealKind};
use proptest::prelude::*;
use std::collections::HashMap;

#[derive(Clone, Debug)]
enum Op {
    TopUp {
        staff: i64,
        amount: i64,
    },
    Period {
        staff: i64,
        grant: i64,
        expire: bool,
    },
    Charge {
        staff: i64,
        price: i64,
        meal: usize,
        day: u8,
    },
    Reverse {
        nth: usize,
    },
    CashOut {
        staff: i64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0i64..4, 1i64..50_000).prop_map(|(staff, amount)| Op::TopUp { staff, amount }),
        (0i64..4, 0i64..30_000, any::<bool>()).prop_map(|(staff, grant, expire)| Op::Period {
            staff,
            grant,
            expire
        }),
        (0i64..4, -100i64..9000, 0usize..3, 0u8..3).prop_map(|(staff, price, meal, day)| {
            Op::Charge {
                staff,
                price,
                meal,
                day,
            }
        }),
        (0usize..64).prop_map(|nth| Op::Reverse { nth }),
        (0i64..4).prop_map(|staff| Op::CashOut { staff }),
    ]
}

#[derive(Default)]
struct Book {
    balances: HashMap<BookAccount, i64>,
    entries: Vec<ProposedEntry>,
    /// (staff, day, meal) -> gross amounts of standing charges, with the entry index.
    charges: Vec<(i64, u8, MealKind, i64, usize, bool)>,
}

impl Book {
    fn bal(&self, a: BookAccount) -> Fen {
        Fen(*self.balances.get(&a).unwrap_or(&0))
    }

    fn post(&mut self, e: ProposedEntry) -> usize {
        let sum: i128 = e.postings().iter().map(|p| i128::from(p.amount.0)).sum();
        assert_eq!(sum, 0, "entry does not balance: {e:?}");
        for p in e.postings() {
            *self.balances.entry(p.account).or_default() += p.amount.0;
        }
        self.entries.push(e);
        self.entries.len() - 1
    }
}

const DAILY_CAP: i64 = 12_000;
const TXN_CAP: i64 = 8_000;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]
    #[test]
    fn book_stays_balanced(ops in prop::collection::vec(op(), 1..120)) {
        let mut b = Book::default();
        for op in ops {
            match op {
                Op::TopUp { staff, amount } => {
                    b.post(ProposedEntry::top_up(staff, Fen(amount)).unwrap());
                }
                Op::Period { staff, grant, expire } => {
                    let cur = b.bal(BookAccount::StaffSubsidy(staff));
                    for e in ledger::subsidy::period_entries(staff, cur, Fen(grant), expire).unwrap() {
                        b.post(e);
                    }
                    if expire {
                        prop_assert_eq!(b.bal(BookAccount::StaffSubsidy(staff)), Fen(grant));
                    }
                }
                Op::Charge { staff, price, meal, day } => {
                    let meal = MealKind::ALL[meal];
                    let standing: Vec<_> = b.charges.iter().filter(|c| c.0 == staff && c.1 == day && c.5).collect();
                    let spent: i64 = standing.iter().map(|c| c.3).sum();
                    let taken = standing.iter().filter(|c| c.2 == meal).count() as u32;
                    let facts = ChargeFacts {
                        served_too_long_ago: false,
                        staff_active: true,
                        meal: Some(meal),
                        price: Some(Fen(price)),
                        cash_balance: b.bal(BookAccount::StaffCash(staff)),
                        subsidy_balance: b.bal(BookAccount::StaffSubsidy(staff)),
                        spent_today: Fen(spent),
                        meals_taken: taken,
                        meals_allowed: 2,
                        per_transaction_cap: Some(Fen(TXN_CAP)),
                        daily_cap: Some(Fen(DAILY_CAP)),
                    };
                    if let Ok(split) = decide_charge(&facts) {
                        prop_assert_eq!(split.subsidy.0 + split.cash.0, price);
                        let e = ProposedEntry::charge(staff, split.subsidy, split.cash).unwrap();
                        let idx = b.post(e);
                        b.charges.push((staff, day, meal, price, idx, true));
                    }
                }
                Op::Reverse { nth } => {
                    if b.charges.is_empty() { continue; }
                    let i = nth % b.charges.len();
                    if !b.charges[i].5 { continue; }
                    let before: Vec<_> = b.balances.clone().into_iter().collect();
                    let orig = b.entries[b.charges[i].4].clone();
                    let e = ProposedEntry::reversing(EntryKind::Reversal, orig.postings()).unwrap();
                    b.post(e);
                    b.charges[i].5 = false;
                    // A reversal restores exactly what the charge took.
                    for (acct, bal) in before {
                        prop_assert_eq!(b.bal(acct).0, bal - orig.delta(acct).0);
                    }
                }
                Op::CashOut { staff } => {
                    let cash = b.bal(BookAccount::StaffCash(staff));
                    if cash.0 > 0 {
                        b.post(ProposedEntry::cash_out(staff, cash).unwrap());
                        prop_assert_eq!(b.bal(BookAccount::StaffCash(staff)), Fen(0));
                    }
                }
            }
            // Invariants after every operation.
            let total: i64 = b.balances.values().sum();
            prop_assert_eq!(total, 0);
            for s in 0..4 {
                prop_assert!(b.bal(BookAccount::StaffCash(s)).0 >= 0);
                prop_assert!(b.bal(BookAccount::StaffSubsidy(s)).0 >= 0);
                for day in 0..3u8 {
                    let spent: i64 = b.charges.iter().filter(|c| c.0 == s && c.1 == day && c.5).map(|c| c.3).sum();
                    prop_assert!(spent <= DAILY_CAP);
                    for meal in MealKind::ALL {
                        let n = b.charges.iter().filter(|c| c.0 == s && c.1 == day && c.2 == meal && c.5).count();
                        prop_assert!(n <= 2);
                    }
                }
            }
        }
    }

    #[test]
    fn yuan_fen_round_trip(f in -1_000_000_000i64..1_000_000_000) {
        prop_assert_eq!(Fen::from_yuan(Fen(f).to_yuan()), Ok(Fen(f)));
    }
}
