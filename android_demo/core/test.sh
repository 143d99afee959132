#!/usr/bin/env bash
# Type-check the app, compile the Kotlin core and its tests with Debian's kotlinc (one call) and run every *Test class with JUnit 4;
# under DUET_REQUIRE_LIVE=1 (tests/live_service.py) a skipped test fails the run.
# Usage (from anywhere): bash android_demo/core/test.sh
# Env: DUET_GOLDEN_DIR (default: <repo>/tests/golden), DUET_LIVE_DIR + DUET_REQUIRE_LIVE (set by tests/live_service.py).
set -euo pipefail

CORE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$CORE/../.." && pwd)"
JARS=/usr/share/java
OUT="$CORE/build/linux"
CP="$JARS/gson.jar:$JARS/bcprov.jar:$JARS/junit4.jar:$JARS/hamcrest-core.jar"

for jar in gson.jar bcprov.jar junit4.jar hamcrest-core.jar kotlin-stdlib.jar; do
  [ -f "$JARS/$jar" ] || { echo "missing $JARS/$jar (apt-get install kotlin junit4 libgoogle-gson-java libbcprov-java)" >&2; exit 2; }
done
command -v kotlinc >/dev/null || { echo "kotlinc not found (apt-get install kotlin)" >&2; exit 2; }

# The app first: its sources type-checked against the pinned runtimes' signatures (android_demo/app/typecheck.sh).
bash "$CORE/../app/typecheck.sh"

rm -rf "$OUT"
mkdir -p "$OUT"
echo "compiling android_demo/core (main + test) with $(kotlinc -version 2>&1 | grep -o 'kotlinc-jvm [^ ]*' || echo kotlinc)"
status=0
kotlinc -jvm-target 1.8 -cp "$CP" -d "$OUT" "$CORE/src/main/kotlin" "$CORE/src/test/kotlin" >"$OUT/kotlinc.log" 2>&1 || status=$?
grep -v 'Options -Xverify:none and -noverify were deprecated' "$OUT/kotlinc.log" || true
[ "$status" -eq 0 ] || { echo "compilation failed (kotlinc exit $status)" >&2; exit 1; }

TESTS=$(cd "$OUT" && find io -name '*Test.class' ! -name '*$*' | sed 's/\.class$//; s#/#.#g' | sort)
[ -n "$TESTS" ] || { echo "no test classes compiled" >&2; exit 1; }
echo "running: $(echo $TESTS | tr ' ' ',')"
# shellcheck disable=SC2086
# io.duet.core.TestMain = JUnitCore + a count of skipped tests (a skip fails the run under DUET_REQUIRE_LIVE=1)
exec java -Dduet.golden.dir="$REPO/tests/golden" -cp "$OUT:$CP:$JARS/kotlin-stdlib.jar" io.duet.core.TestMain $TESTS
