//! Tests of the views.
