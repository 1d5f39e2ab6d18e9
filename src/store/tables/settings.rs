//! The `settings` table: setting name → JSON text (the notification settings an admin
//! changed; the configuration file holds the rest).

use crate::store::tables::Batches;
use crate::store::{Store, StoreError};

/// Writes a setting.
pub(crate) fn put(b: &mut Batches, key: &str, value: &str) {
    b.settings.insert(key.as_bytes(), value.as_bytes());
}

impl Store {
    /// A persisted setting's JSON text.
    ///
    /// # Errors
    /// [`StoreError`] on an I/O failure.
    pub fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .trees
            .settings
            .get(key.as_bytes())?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }
}

#[cfg(test)]
mod tests {
    use crate::domain::write_set::WriteOp;
    use crate::store::tables::test_support::{commit, open};

    #[test]
    fn a_setting_is_one_key_replaced_by_the_next_write() {
        let (_dir, store) = open();
        assert_eq!(store.setting("notifications").unwrap(), None);
        for value in ["{\"a\":1}", "{\"a\":2}"] {
            commit(
                &store,
                vec![WriteOp::Setting {
                    key: "notifications".into(),
                    value: value.into(),
                }],
            );
            assert_eq!(
                store.setting("notifications").unwrap().as_deref(),
                Some(value)
            );
        }
    }
}
