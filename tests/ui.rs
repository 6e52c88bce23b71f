//! Compile-fail tests: each misuse of `#[view]`, `views!` or a typed call is a compile error that
//! points at the user's code and says what to do. The expected messages are in `tests/ui/*.stderr`.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
