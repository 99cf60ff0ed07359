// The drawer's edge: drag it, or focus it and use the arrow keys, to give the detail
// more or less of the width (a WAI-ARIA window splitter: role=separator with a value).

import { useCallback, useRef, type KeyboardEvent, type PointerEvent } from "react";

export const STEP_PX = 32;

/** ``width`` kept within [min, max] (max wins when the window is too narrow). */
export function clampWidth(width: number, min: number, max: number): number {
  return Math.round(Math.max(Math.min(width, max), Math.min(min, max)));
}

/** The width a key asks for, or null when the key is not the handle's. The drawer is
 * on the right: ArrowLeft moves its edge left (wider), ArrowRight narrower. */
export function widthForKey(key: string, width: number, min: number, max: number): number | null {
  switch (key) {
    case "ArrowLeft":
      return clampWidth(width + STEP_PX, min, max);
    case "ArrowRight":
      return clampWidth(width - STEP_PX, min, max);
    case "Home":
      return clampWidth(min, min, max);
    case "End":
      return clampWidth(max, min, max);
    default:
      return null;
  }
}

export function ResizeHandle({
  width,
  min,
  max,
  onResize,
  label,
}: {
  width: number;
  min: number;
  max: number;
  onResize: (width: number) => void;
  label: string;
}) {
  const dragging = useRef(false);
  const onPointerDown = useCallback((e: PointerEvent<HTMLDivElement>) => {
    dragging.current = true;
    e.currentTarget.setPointerCapture?.(e.pointerId);
    e.preventDefault();
  }, []);
  const onPointerMove = useCallback(
    (e: PointerEvent<HTMLDivElement>) => {
      if (dragging.current) onResize(clampWidth(window.innerWidth - e.clientX, min, max));
    },
    [onResize, min, max],
  );
  const stop = useCallback((e: PointerEvent<HTMLDivElement>) => {
    dragging.current = false;
    e.currentTarget.releasePointerCapture?.(e.pointerId);
  }, []);
  const onKeyDown = useCallback(
    (e: KeyboardEvent<HTMLDivElement>) => {
      const next = widthForKey(e.key, width, min, max);
      if (next === null) return;
      e.preventDefault();
      e.stopPropagation(); // not a move to the next call
      onResize(next);
    },
    [width, min, max, onResize],
  );
  return (
    <div
      className="resize-handle"
      role="separator"
      aria-orientation="vertical"
      aria-label={label}
      aria-valuenow={Math.round(width)}
      aria-valuemin={Math.round(Math.min(min, max))}
      aria-valuemax={Math.round(max)}
      tabIndex={0}
      title={"Drag, or focus and use \u2190 \u2192, to resize"}
      data-testid="drawer-resize"
      onPointerDown={onPointerDown}
      onPointerMove={onPointerMove}
      onPointerUp={stop}
      onPointerCancel={stop}
      onKeyDown={onKeyDown}
    />
  );
}
