//! Typed async client of the PD HTTP API and the TiDB/TiKV status endpoints.
//!
//! Empty for now: the calls the operator makes (members, leader transfer, stores, schedulers) come
//! with the PD controller.
