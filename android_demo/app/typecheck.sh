#!/usr/bin/env bash
# Type-check android_demo/app (main + debug sources) and the core with Debian's kotlinc against declarations of the
# APIs it calls (app/typecheck/: Android and AndroidX as Java stubs from the API reference; ExecuTorch and LiteRT in
# Kotlin with the signatures of their pinned sources). Nothing runs: this catches a call that does not compile.
# Usage: bash android_demo/app/typecheck.sh
set -euo pipefail

APP="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CORE="$APP/../core"
JARS=/usr/share/java
OUT="$APP/build/typecheck"
rm -rf "$OUT"
mkdir -p "$OUT/java" "$OUT/kotlin"
javac -nowarn -d "$OUT/java" $(find "$APP/typecheck/java" -name '*.java') 
CP="$OUT/java:$JARS/gson.jar:$JARS/bcprov.jar"
echo "type-checking android_demo/app against app/typecheck/ (ExecuTorch 1.5 line, LiteRT 2.1.0, Android/AndroidX stubs)"
status=0
kotlinc -nowarn -jvm-target 1.8 -cp "$CP" -d "$OUT/kotlin" "$APP/typecheck/kotlin" "$CORE/src/main/kotlin" \
  "$APP/src/main/kotlin" "$APP/src/debug/kotlin" >"$OUT/kotlinc.log" 2>&1 || status=$?
grep -v 'Options -Xverify:none and -noverify were deprecated' "$OUT/kotlinc.log" || true
[ "$status" -eq 0 ] || { echo "android_demo/app does not type-check (kotlinc exit $status)" >&2; exit 1; }
echo "android_demo/app type-checks"
