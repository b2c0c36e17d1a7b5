//! isolab's harness: plans trials, runs them on the native, container and VM backends, stores
//! every sample the moment it exists, and summarises them (medians, nonparametric confidence
//! intervals, ratios to native).
//!
//! The pipeline: [`suite`] (what to run) → [`factors`] (its columns: backends crossed with the
//! settings varied side by side) → [`plan`] (trials, warm-up first, columns shuffled per
//! repetition) → [`backend::Backend`] (one trial) → [`store`] (samples.jsonl + manifest.json) →
//! [`stats`] and [`summary`] (what it means).

pub mod artifact;
pub mod backend;
pub mod backends;
pub mod book;
pub mod density;
pub mod doctor;
pub mod factors;
pub mod host;
pub mod i18n;
pub mod interrupt;
pub mod lab_net;
pub mod manifest;
pub mod plan;
pub mod published;
pub mod report;
pub mod run;
pub mod run_places;
pub mod sample;
pub mod stats;
pub mod store;
pub mod suite;
pub mod summary;
pub mod timefmt;
