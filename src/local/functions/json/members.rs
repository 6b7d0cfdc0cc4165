//! The top-level members of each JSON object in a column, parsed once and shared by every
//! `json_extract_scalar(col, '$.key')` a query evaluates over the same batch: a Silver
//! model extracting four keys from `payload` parses each payload once instead of four
//! times. Parsing is serde_json's, as in [`super::navigate`], so a document that
//! `navigate` refuses (not JSON, text after it) is refused here too; the first member with
//! a key wins, as there.
//!
//! The memo is per thread and holds the column it was built from (so its buffers cannot
//! be freed and reused while it is remembered); a batch's expressions are evaluated one
//! after another on one thread.

use std::cell::RefCell;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, StringArray};
use serde::de::{DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// A member key: a range of the document when it has no escapes, else its text.
enum Key {
    Raw(Range<u32>),
    Owned(Box<str>),
}

/// What a row of the column holds.
pub(crate) enum Row<'a> {
    Null,
    /// An object, and its members.
    Object(&'a str, Members<'a>),
    /// Anything else (not JSON, an array, a scalar): the caller navigates it.
    Other(&'a str),
}

/// The members of one row's object.
pub(crate) struct Members<'a>(&'a [(Key, Range<u32>)]);

impl<'a> Members<'a> {
    /// The raw text of the first member named `key`.
    pub(crate) fn lookup(&self, doc: &'a str, key: &str) -> Option<&'a str> {
        self.0.iter().find_map(|(k, v)| {
            let same = match k {
                Key::Raw(r) => &doc[r.start as usize..r.end as usize] == key,
                Key::Owned(s) => &**s == key,
            };
            same.then(|| &doc[v.start as usize..v.end as usize])
        })
    }
}

struct Memo {
    array: ArrayRef,
    /// Per row, the range of `members`; `u32::MAX` as start for a row that is not an object.
    rows: Vec<(u32, u32)>,
    members: Vec<(Key, Range<u32>)>,
}

impl Memo {
    fn build(array: &ArrayRef, docs: &StringArray) -> Memo {
        let mut rows = Vec::with_capacity(docs.len());
        let mut members = Vec::with_capacity(docs.len() * 4);
        for row in 0..docs.len() {
            let start = members.len() as u32;
            let parsed = docs.is_valid(row) && {
                let doc = docs.value(row);
                doc.len() < u32::MAX as usize && parse(doc, &mut members).is_some()
            };
            if parsed {
                rows.push((start, members.len() as u32));
            } else {
                members.truncate(start as usize);
                rows.push((u32::MAX, 0));
            }
        }
        Memo { array: Arc::clone(array), rows, members }
    }

    fn row<'a>(&'a self, docs: &'a StringArray, row: usize) -> Row<'a> {
        if docs.is_null(row) {
            return Row::Null;
        }
        let doc = docs.value(row);
        match self.rows[row] {
            (u32::MAX, _) => Row::Other(doc),
            (a, b) => Row::Object(doc, Members(&self.members[a as usize..b as usize])),
        }
    }
}

/// The memo of a column, for `f`.
pub(crate) struct View<'a> {
    memo: &'a Memo,
    docs: &'a StringArray,
}

impl<'a> View<'a> {
    pub(crate) fn row(&self, row: usize) -> Row<'a> {
        self.memo.row(self.docs, row)
    }
}

thread_local! {
    /// The last two columns seen (a query extracting from two columns keeps both).
    static MEMOS: RefCell<Vec<Memo>> = const { RefCell::new(Vec::new()) };
}

/// Calls `f` with the members of every row of `array` (`docs` is the same array, typed).
pub(crate) fn with_members<R>(array: &ArrayRef, docs: &StringArray, f: impl FnOnce(&View<'_>) -> R) -> R {
    MEMOS.with(|memos| {
        let mut memos = memos.borrow_mut();
        match memos.iter().position(|m| Arc::ptr_eq(&m.array, array)) {
            Some(0) => {}
            Some(i) => {
                let m = memos.remove(i);
                memos.insert(0, m);
            }
            None => {
                memos.insert(0, Memo::build(array, docs));
                memos.truncate(2);
            }
        }
        f(&View { memo: &memos[0], docs })
    })
}

/// Parses `doc` as one JSON object (and nothing after it), appending its members.
fn parse(doc: &str, out: &mut Vec<(Key, Range<u32>)>) -> Option<()> {
    let base = doc.as_ptr() as usize;
    let mut de = serde_json::Deserializer::from_str(doc);
    de.deserialize_map(Collect { base, out }).ok()?;
    de.end().ok()
}

struct Collect<'o> {
    base: usize,
    out: &'o mut Vec<(Key, Range<u32>)>,
}

impl<'de> Visitor<'de> for Collect<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a json object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let base = self.base;
        let range = |s: &str| {
            let start = s.as_ptr() as usize - base;
            start as u32..(start + s.len()) as u32
        };
        while let Some(key) = map.next_key_seed(KeySeed { base })? {
            let value: &'de RawValue = map.next_value()?;
            self.out.push((key, range(value.get())));
        }
        Ok(())
    }
}

/// Reads a key, borrowed from the document when it has no escapes.
struct KeySeed {
    base: usize,
}

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Key;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Key, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Key, E> {
        let start = v.as_ptr() as usize - self.base;
        Ok(Key::Raw(start as u32..(start + v.len()) as u32))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Key, E> {
        Ok(Key::Owned(v.into()))
    }
}
