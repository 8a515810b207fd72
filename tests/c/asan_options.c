/*
 * Linked into every C and C++ test program built with MQTTC_SANITIZE=address (tests/common/mod.rs).
 * AddressSanitizer takes its default options from this function, so a program run by a test, or
 * by hand, reports leaks (LeakSanitizer) and memory errors without ASAN_OPTIONS in the
 * environment; ASAN_OPTIONS still overrides them. Any report makes the program exit non-zero.
 */
#ifdef __cplusplus
extern "C" /* C++ test programs compile this file as C++ (tests/common/mod.rs) */
#endif
const char *__asan_default_options(void);

const char *__asan_default_options(void) {
    return "detect_leaks=1:halt_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1:"
           "check_initialization_order=1";
}
