//! The canteen's rules as plain functions over plain values: no database, no clock, no network.
//! Storage and HTTP layers gather the facts (balances, today's spending, the price table), ask
//! these functions what to do, and write down exactly the postings they return. Keeping the rules
//! here lets them be unit- and property-tested without any I/O, and guarantees that SQLite and
//! PostgreSQL apply the same rules because they call the same code.

pub mod charge;
pub mod meal;
pub mod money;
pub mod posting;
pub mod refund;
pub mod subsidy;
pub mod waste;

pub use charge::{decide_charge, ChargeFacts, ChargeSplit, Rejection};
pub use meal::{MealKind, MealPeriod, Schedule};
pub use money::{Fen, MoneyError};
pub use posting::{BookAccount, EntryKind, Posting, PostingError, ProposedEntry};
