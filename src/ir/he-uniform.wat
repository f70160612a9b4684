;; He-uniform draws with WebAssembly SIMD: the numbers `fillHeUniform` (he-uniform.ts) documents, four at a time.
;;
;; Mulberry32's state is a counter: the state of draw i is start + (i+1)·0x6d2b79f5 (mod 2^32), and the draw is a
;; fixed mix of that state alone. So four consecutive draws are four independent lanes of one i32x4 computation.
;; The float part is done in float64, two lanes at a time, exactly as the scalar JavaScript does it:
;;   u = r / 2^32,  v = (2u − 1) · bound  (float64),  w = fround(v),  out = fround(w · scale)  (scale in float64)
;; (r·2^-31 − 1 equals 2u − 1 exactly: r has 32 significant bits.) With scale 1 the last step changes nothing.
;;
;; Rebuild the embedded bytes (he-uniform-wasm.ts) with `node scripts/build-wasm.mjs`; a test checks they match.
(module
  (memory (export "memory") 48)

  ;; One draw as float32 bits' source: the mixed 32-bit value of state s.
  (func $mix (param $s i32) (result i32)
    (local $m i32)
    (local.set $m (i32.mul (i32.xor (local.get $s) (i32.shr_u (local.get $s) (i32.const 15)))
                           (i32.or (local.get $s) (i32.const 1))))
    (local.set $m (i32.xor (local.get $m)
      (i32.add (local.get $m)
        (i32.mul (i32.xor (local.get $m) (i32.shr_u (local.get $m) (i32.const 7)))
                 (i32.or (local.get $m) (i32.const 61))))))
    (i32.xor (local.get $m) (i32.shr_u (local.get $m) (i32.const 14))))

  ;; Writes `count` float32 values at byte offset `ptr`: draws 1..count after state `start`, scaled as above.
  ;; Returns the state after the last draw (start + count·0x6d2b79f5).
  (func (export "fill") (param $ptr i32) (param $count i32) (param $start i32) (param $bound f64) (param $scale f64) (result i32)
    (local $v v128) (local $m v128) (local $lo v128) (local $hi v128) (local $vend i32) (local $end i32) (local $s i32)
    (local $one v128) (local $sixtyone v128) (local $step4 v128) (local $twoM31 v128) (local $fone v128) (local $bounds v128) (local $scales v128)
    ;; loop-invariant vectors, made once: a splat inside the loop is rebuilt at every iteration
    (local.set $one (i32x4.splat (i32.const 1)))
    (local.set $sixtyone (i32x4.splat (i32.const 61)))
    (local.set $step4 (i32x4.splat (i32.const 0xb4ade7d4)))
    (local.set $twoM31 (f64x2.splat (f64.const 0x1p-31)))
    (local.set $fone (f64x2.splat (f64.const 1)))
    (local.set $bounds (f64x2.splat (local.get $bound)))
    (local.set $scales (f64x2.splat (local.get $scale)))
    (local.set $v (i32x4.add (i32x4.splat (local.get $start))
      (v128.const i32x4 0x6d2b79f5 0xda56f3ea 0x47826ddf 0xb4ade7d4)))
    (local.set $vend (i32.add (local.get $ptr) (i32.shl (i32.and (local.get $count) (i32.const -4)) (i32.const 2))))
    (local.set $end (i32.add (local.get $ptr) (i32.shl (local.get $count) (i32.const 2))))
    (block $vdone
      (loop $vloop
        (br_if $vdone (i32.ge_u (local.get $ptr) (local.get $vend)))
        (local.set $m (i32x4.mul (v128.xor (local.get $v) (i32x4.shr_u (local.get $v) (i32.const 15)))
                                 (v128.or (local.get $v) (local.get $one))))
        (local.set $m (v128.xor (local.get $m)
          (i32x4.add (local.get $m)
            (i32x4.mul (v128.xor (local.get $m) (i32x4.shr_u (local.get $m) (i32.const 7)))
                       (v128.or (local.get $m) (local.get $sixtyone))))))
        (local.set $m (v128.xor (local.get $m) (i32x4.shr_u (local.get $m) (i32.const 14))))
        ;; lanes 0, 1 and lanes 2, 3 as float64 pairs
        (local.set $lo (f64x2.convert_low_i32x4_u (local.get $m)))
        (local.set $hi (f64x2.convert_low_i32x4_u
          (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $m) (local.get $m))))
        (local.set $lo (f32x4.demote_f64x2_zero
          (f64x2.mul (f64x2.sub (f64x2.mul (local.get $lo) (local.get $twoM31)) (local.get $fone))
                     (local.get $bounds))))
        (local.set $hi (f32x4.demote_f64x2_zero
          (f64x2.mul (f64x2.sub (f64x2.mul (local.get $hi) (local.get $twoM31)) (local.get $fone))
                     (local.get $bounds))))
        (local.set $lo (f32x4.demote_f64x2_zero (f64x2.mul (f64x2.promote_low_f32x4 (local.get $lo)) (local.get $scales))))
        (local.set $hi (f32x4.demote_f64x2_zero (f64x2.mul (f64x2.promote_low_f32x4 (local.get $hi)) (local.get $scales))))
        (v128.store (local.get $ptr) (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $lo) (local.get $hi)))
        (local.set $v (i32x4.add (local.get $v) (local.get $step4)))
        (local.set $ptr (i32.add (local.get $ptr) (i32.const 16)))
        (br $vloop)))
    ;; the last count mod 4 draws, one at a time; lane 0 of v holds the next draw's state
    (local.set $s (i32x4.extract_lane 0 (local.get $v)))
    (block $done
      (loop $loop
        (br_if $done (i32.ge_u (local.get $ptr) (local.get $end)))
        (f32.store (local.get $ptr) (f32.demote_f64 (f64.mul (f64.promote_f32 (f32.demote_f64
          (f64.mul (f64.sub (f64.mul (f64.convert_i32_u (call $mix (local.get $s))) (f64.const 0x1p-31)) (f64.const 1))
                   (local.get $bound))))
          (local.get $scale))))
        (local.set $s (i32.add (local.get $s) (i32.const 0x6d2b79f5)))
        (local.set $ptr (i32.add (local.get $ptr) (i32.const 4)))
        (br $loop)))
    (i32.sub (local.get $s) (i32.const 0x6d2b79f5)))
)
