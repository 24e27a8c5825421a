//! Double-entry postings. Every journal entry is a set of postings whose amounts sum to zero; a
//! person's cash and subsidy balances are the sums of the postings to their two book accounts.
//! Sign convention: a positive amount increases that account's balance. Money "comes from"
//! system accounts (gateway clearing, subsidy fund), which therefore run negative, and "goes to"
//! revenue or cash-out, so the sum over all accounts is always zero. Corrections never edit a
//! posting: they add a reversing entry.

use crate::money::Fen;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A book account, named by what it is rather than by a database id; storage maps these names to
/// rows. Staff accounts carry the staff id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum BookAccount {
    /// Money the person paid in (top-ups); the canteen owes it to them.
    StaffCash(i64),
    /// Employer subsidy credited to the person, spent before cash.
    StaffSubsidy(i64),
    /// What the canteen earned from meals.
    Revenue,
    /// The employer's subsidy budget: grants come out of it, expiries go back.
    SubsidyFund,
    /// Clearing account of the payment provider: paid top-up orders come from here.
    Gateway,
    /// Balances paid back to people who leave.
    CashOut,
}

impl BookAccount {
    /// Stable name of a system account (staff accounts return `None`).
    pub fn system_code(self) -> Option<&'static str> {
        match self {
            BookAccount::Revenue => Some("revenue"),
            BookAccount::SubsidyFund => Some("subsidy_fund"),
            BookAccount::Gateway => Some("gateway"),
            BookAccount::CashOut => Some("cash_out"),
            BookAccount::StaffCash(_) | BookAccount::StaffSubsidy(_) => None,
        }
    }

    pub const SYSTEM: [BookAccount; 4] = [
        BookAccount::Revenue,
        BookAccount::SubsidyFund,
        BookAccount::Gateway,
        BookAccount::CashOut,
    ];
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    Charge,
    TopUp,
    SubsidyGrant,
    SubsidyExpiry,
    /// A manager undoing a wrong charge.
    Reversal,
    /// A refund a person asked for and a manager approved.
    Refund,
    CashOut,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Charge => "charge",
            EntryKind::TopUp => "top_up",
            EntryKind::SubsidyGrant => "subsidy_grant",
            EntryKind::SubsidyExpiry => "subsidy_expiry",
            EntryKind::Reversal => "reversal",
            EntryKind::Refund => "refund",
            EntryKind::CashOut => "cash_out",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Posting {
    pub account: BookAccount,
    pub amount: Fen,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PostingError {
    #[error("an entry needs at least two postings")]
    TooFewPostings,
    #[error("postings sum to {0} fen instead of zero")]
    Unbalanced(i128),
    #[error("a posting of zero fen carries no information")]
    ZeroPosting,
    #[error("amount must be positive")]
    NotPositive,
}

/// An entry that has been checked to balance; the only way to build one is through the
/// constructors below, which all call [`ProposedEntry::new`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProposedEntry {
    kind: EntryKind,
    postings: Vec<Posting>,
}

impl ProposedEntry {
    /// Merges postings to the same account, drops legs that cancel to zero, and refuses entries
    /// that do not balance. Sums are taken in i128 so that no input can overflow the check.
    pub fn new(kind: EntryKind, postings: Vec<Posting>) -> Result<Self, PostingError> {
        let mut merged: BTreeMap<BookAccount, i128> = BTreeMap::new();
        for p in &postings {
            if p.amount.0 == 0 {
                return Err(PostingError::ZeroPosting);
            }
            *merged.entry(p.account).or_default() += i128::from(p.amount.0);
        }
        let sum: i128 = merged.values().sum();
        if sum != 0 {
            return Err(PostingError::Unbalanced(sum));
        }
        let postings: Vec<Posting> = merged
            .into_iter()
            .filter(|(_, a)| *a != 0)
            .map(|(account, a)| Posting {
                account,
                amount: Fen(a as i64),
            })
            .collect();
        if postings.len() < 2 {
            return Err(PostingError::TooFewPostings);
        }
        Ok(ProposedEntry { kind, postings })
    }

    pub fn kind(&self) -> EntryKind {
        self.kind
    }

    pub fn postings(&self) -> &[Posting] {
        &self.postings
    }

    /// The change this entry makes to one account's balance.
    pub fn delta(&self, account: BookAccount) -> Fen {
        Fen(self
            .postings
            .iter()
            .filter(|p| p.account == account)
            .map(|p| p.amount.0)
            .sum())
    }

    /// A meal: subsidy first, then cash, all to revenue.
    pub fn charge(staff: i64, subsidy: Fen, cash: Fen) -> Result<Self, PostingError> {
        if subsidy.0 < 0 || cash.0 < 0 {
            return Err(PostingError::NotPositive);
        }
        let mut v = Vec::with_capacity(3);
        if subsidy.0 > 0 {
            v.push(Posting {
                account: BookAccount::StaffSubsidy(staff),
                amount: -subsidy,
            });
        }
        if cash.0 > 0 {
            v.push(Posting {
                account: BookAccount::StaffCash(staff),
                amount: -cash,
            });
        }
        let total = subsidy
            .0
            .checked_add(cash.0)
            .ok_or(PostingError::NotPositive)?;
        if total > 0 {
            v.push(Posting {
                account: BookAccount::Revenue,
                amount: Fen(total),
            });
        }
        ProposedEntry::new(EntryKind::Charge, v)
    }

    fn transfer(
        kind: EntryKind,
        from: BookAccount,
        to: BookAccount,
        amount: Fen,
    ) -> Result<Self, PostingError> {
        if amount.0 <= 0 {
            return Err(PostingError::NotPositive);
        }
        ProposedEntry::new(
            kind,
            vec![
                Posting {
                    account: from,
                    amount: -amount,
                },
                Posting {
                    account: to,
                    amount,
                },
            ],
        )
    }

    pub fn top_up(staff: i64, amount: Fen) -> Result<Self, PostingError> {
        Self::transfer(
            EntryKind::TopUp,
            BookAccount::Gateway,
            BookAccount::StaffCash(staff),
            amount,
        )
    }

    pub fn subsidy_grant(staff: i64, amount: Fen) -> Result<Self, PostingError> {
        Self::transfer(
            EntryKind::SubsidyGrant,
            BookAccount::SubsidyFund,
            BookAccount::StaffSubsidy(staff),
            amount,
        )
    }

    pub fn subsidy_expiry(staff: i64, amount: Fen) -> Result<Self, PostingError> {
        Self::transfer(
            EntryKind::SubsidyExpiry,
            BookAccount::StaffSubsidy(staff),
            BookAccount::SubsidyFund,
            amount,
        )
    }

    pub fn cash_out(staff: i64, amount: Fen) -> Result<Self, PostingError> {
        Self::transfer(
            EntryKind::CashOut,
            BookAccount::StaffCash(staff),
            BookAccount::CashOut,
            amount,
        )
    }

    /// The exact opposite of an earlier entry's postings: how corrections are made without
    /// editing history. `kind` is [`EntryKind::Reversal`] or [`EntryKind::Refund`].
    pub fn reversing(kind: EntryKind, original: &[Posting]) -> Result<Self, PostingError> {
        ProposedEntry::new(
            kind,
            original
                .iter()
                .map(|p| Posting {
                    account: p.account,
                    amount: -p.amount,
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charge_balances_and_skips_zero_legs() {
        let e = ProposedEntry::charge(7, Fen(0), Fen(1200)).unwrap();
        assert_eq!(e.postings().len(), 2);
        assert_eq!(e.delta(BookAccount::StaffCash(7)), Fen(-1200));
        assert_eq!(e.delta(BookAccount::Revenue), Fen(1200));
        assert_eq!(e.delta(BookAccount::StaffSubsidy(7)), Fen(0));
    }

    #[test]
    fn free_meal_is_not_an_entry() {
        assert_eq!(
            ProposedEntry::charge(7, Fen(0), Fen(0)),
            Err(PostingError::TooFewPostings)
        );
    }

    #[test]
    fn unbalanced_is_refused() {
        let r = ProposedEntry::new(
            EntryKind::TopUp,
            vec![
                Posting {
                    account: BookAccount::Gateway,
                    amount: Fen(-100),
                },
                Posting {
                    account: BookAccount::StaffCash(1),
                    amount: Fen(99),
                },
            ],
        );
        assert_eq!(r, Err(PostingError::Unbalanced(-1)));
    }

    #[test]
    fn reversal_cancels() {
        let e = ProposedEntry::charge(3, Fen(500), Fen(700)).unwrap();
        let r = ProposedEntry::reversing(EntryKind::Reversal, e.postings()).unwrap();
        for a in [
            BookAccount::StaffCash(3),
            BookAccount::StaffSubsidy(3),
            BookAccount::Revenue,
        ] {
            assert_eq!(e.delta(a).0 + r.delta(a).0, 0);
        }
    }

    #[test]
    fn transfers_need_positive_amounts() {
        assert!(ProposedEntry::top_up(1, Fen(0)).is_err());
        assert!(ProposedEntry::cash_out(1, Fen(-5)).is_err());
    }
}
