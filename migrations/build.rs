//! Build script: recompile when a migration file changes.

// `sqlx::migrate!` embeds the SQL files at compile time; without this, adding a migration to a
// directory cargo does not watch leaves a cached build with the old set (sqlx's advice).
fn main() {
    println!("cargo:rerun-if-changed=sql");
}
