/*
 * mqttc_topic_matches, mqttc_topic_check and mqttc_filter_check against MQTT's rules (section 4.7),
 * case by case: what matches, what is refused and with which status. No broker needed.
 * Prints one line per case and "topics: ok (N cases)"; exits non-zero on any wrong answer.
 */
#include "check.h"

#include <stdbool.h>

static int cases;

static void match(const char *filter, const char *topic, bool want) {
    bool got = !want;
    mqttc_status st = mqttc_topic_matches(filter, topic, &got);
    if (st != MQTTC_OK || got != want)
        FAIL("%s ~ %s: %s, %s (want %s)", filter, topic, mqttc_status_str(st), got ? "match" : "no match",
             want ? "match" : "no match");
    printf("ok %-22s %-14s %s\n", filter, topic, want ? "matches" : "does not match");
    cases++;
}

static void status(const char *what, mqttc_status got, mqttc_status want) {
    if (got != want)
        FAIL("%s: %s, want %s", what, mqttc_status_str(got), mqttc_status_str(want));
    if (want != MQTTC_OK && !mqttc_last_error()[0])
        FAIL("%s: no detail in mqttc_last_error", what);
    printf("ok %-40s %s\n", what, mqttc_status_str(got));
    cases++;
}

int main(void) {
    match("a/b", "a/b", true);
    match("a/b", "a/c", false);
    match("a/+", "a/b", true);
    match("a/+", "a/b/c", false);
    match("a/+/c", "a/b/c", true);
    match("+/+", "/b", true); /* an empty level is a level */
    match("a/#", "a", true);  /* # includes the parent level */
    match("a/#", "a/b/c", true);
    match("#", "a/b", true);
    match("#", "$SYS/x", false); /* no wildcard-first filter matches a $ topic */
    match("+/x", "$SYS/x", false);
    match("$SYS/#", "$SYS/x", true);
    match("$share/g/a/+", "a/b", true); /* a shared filter matches as its filter part */
    match("$share/g/a/+", "b/b", false);
    match("A/b", "a/b", false); /* case matters */

    bool r = false;
    status("matches: wildcard in the topic", mqttc_topic_matches("a/#", "a/+", &r), MQTTC_ERR_INVALID_TOPIC);
    status("matches: # not last", mqttc_topic_matches("a/#/b", "a/b", &r), MQTTC_ERR_INVALID_FILTER);
    status("matches: NULL filter", mqttc_topic_matches(NULL, "a", &r), MQTTC_ERR_NULL);
    status("matches: NULL result", mqttc_topic_matches("a", "a", NULL), MQTTC_ERR_NULL);
    status("matches: invalid UTF-8", mqttc_topic_matches("a", "\xff", &r), MQTTC_ERR_INVALID_UTF8);
    status("topic_check a/b", mqttc_topic_check("a/b"), MQTTC_OK);
    status("topic_check $SYS/x", mqttc_topic_check("$SYS/x"), MQTTC_OK);
    status("topic_check empty", mqttc_topic_check(""), MQTTC_ERR_INVALID_TOPIC);
    status("topic_check a/+", mqttc_topic_check("a/+"), MQTTC_ERR_INVALID_TOPIC);
    status("topic_check a/#", mqttc_topic_check("a/#"), MQTTC_ERR_INVALID_TOPIC);
    status("filter_check a/+/#", mqttc_filter_check("a/+/#"), MQTTC_OK);
    status("filter_check $share/g/a", mqttc_filter_check("$share/g/a"), MQTTC_OK);
    status("filter_check a/b+", mqttc_filter_check("a/b+"), MQTTC_ERR_INVALID_FILTER);
    status("filter_check a/#/b", mqttc_filter_check("a/#/b"), MQTTC_ERR_INVALID_FILTER);
    status("filter_check $share/g", mqttc_filter_check("$share/g"), MQTTC_ERR_INVALID_FILTER);
    status("filter_check empty", mqttc_filter_check(""), MQTTC_ERR_INVALID_FILTER);
    printf("topics: ok (%d cases)\n", cases);
    return 0;
}
