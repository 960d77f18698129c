#!/usr/bin/env bash
# Builds the libFuzzer targets of Tests/Fuzz and runs each for FUZZ_SECONDS (default 60), from
# the committed seeds in Tests/Fuzz/corpus/<target>. New inputs go to .build-fuzz/work, not
# into the committed corpus. A crash, a trap, a hang (over 10 s on one input), a leak or an
# out-of-memory fails the run and leaves the input under .build-fuzz/artifacts.
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]   (the config target needs `swift build` first)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-${FUZZ_SECONDS:-60}}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(json filter patch scim11 flatfile config)
out=.build-fuzz
flags=(-sanitize=fuzzer,address -parse-as-library -O -g -swift-version 6)
mkdir -p "$out/artifacts"

# SCIMKit once, instrumented, as a module the targets import.
scimkit=(Sources/SCIMKit/*.swift)
if [ ! -f "$out/libSCIMKit.a" ] || [ -n "$(find "${scimkit[@]}" -newer "$out/libSCIMKit.a" | head -1)" ]; then
  echo "fuzz: building SCIMKit"
  swiftc "${flags[@]}" -module-name SCIMKit -emit-module -emit-module-path "$out/SCIMKit.swiftmodule" \
    -emit-library -static -o "$out/libSCIMKit.a" "${scimkit[@]}"
fi

# build NAME SWIFTC-ARGS...: rebuilt when any file among the arguments is newer than it.
build() {
  local name=$1; shift
  local inputs=("$out/libSCIMKit.a")
  for a in "$@"; do [ -f "$a" ] && inputs+=("$a"); done
  if [ ! -x "$out/$name" ] || [ -n "$(find "${inputs[@]}" -newer "$out/$name" | head -1)" ]; then
    echo "fuzz: building $name"
    swiftc "${flags[@]}" -I "$out" "$@" "$out/libSCIMKit.a" -o "$out/$name"
  fi
}

status=0
passed=0
failed=0
for t in "${targets[@]}"; do
  case $t in
    flatfile)
      # CSV.swift and Rows.swift as the plugin has them, with a ConnectorSDK that is SCIMKit.
      swiftc "${flags[@]}" -I "$out" -module-name ConnectorSDK -emit-module -emit-module-path "$out/ConnectorSDK.swiftmodule" \
        -emit-library -static -o "$out/libConnectorSDK.a" Tests/Fuzz/ConnectorSDK.swift
      build flatfile -module-name FlatFileFuzz Tests/Fuzz/flatfile.swift Plugins/FlatFileConnector/CSV.swift Plugins/FlatFileConnector/Rows.swift "$out/libConnectorSDK.a" ;;
    config)
      # The configuration reader with the Yams that `swift build` built (not instrumented:
      # coverage is the reader's own).
      [ -f .build/debug/Modules/Yams.swiftmodule ] || { echo "fuzz: run swift build first (the config target uses its Yams)"; exit 2; }
      build config -module-name ConfigFuzz -I .build/debug/Modules -Xcc -fmodule-map-file=.build/checkouts/Yams/Sources/CYaml/include/module.modulemap \
        -Xcc -fmodule-map-file=Sources/CLibCrypto/module.modulemap -lcrypto \
        Tests/Fuzz/config.swift Sources/AgentCore/Config/Config.swift Sources/AgentCore/Plugins/PluginTrust.swift \
        .build/debug/Yams.build/*.swift.o .build/debug/CYaml.build/src/*.o ;;
    *) build "$t" -module-name "$(tr '[:lower:]' '[:upper:]' <<< "${t:0:1}")${t:1}Fuzz" "Tests/Fuzz/$t.swift" ;;
  esac
  mkdir -p "$out/work/$t"
  echo "fuzz: $t for ${seconds}s"
  if ! SWIFT_BACKTRACE=enable=no "$out/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=8192 -print_final_stats=1 \
       -artifact_prefix="$out/artifacts/$t-" "$out/work/$t" "Tests/Fuzz/corpus/$t" > "$out/$t.log" 2>&1; then
    echo "fuzz: $t FAILED (see $out/$t.log and $out/artifacts/)"
    tail -40 "$out/$t.log"
    status=1
    failed=$((failed + 1))
  else
    passed=$((passed + 1))
    echo "fuzz: $t: $(grep -E '^#[0-9]+.*DONE' "$out/$t.log" | tail -1)"
  fi
done
echo "fuzz: $passed passed, $failed failed"
exit $status
