"use client";
// The live view over the service's WebSocket (/v1/live/ws): the first message carries the
// session token; then a snapshot arrives each second. A slow page is sampled by the service
// (`skipped` counts the snapshots it did not get), never the other way round.

import { useEffect, useState } from "react";

import { serviceBase } from "./api";
import type { Live } from "./types";

export type Link = "connecting" | "live" | "closed" | "unauthorised";

interface Frame {
  type: "live" | "error" | "end";
  data?: Live;
  detail?: string;
  seq: number;
  skipped: number;
}

export function useLive(token: string | null, enabled: boolean): { live: Live | null; link: Link; frames: number } {
  const [live, setLive] = useState<Live | null>(null);
  const [link, setLink] = useState<Link>("connecting");
  const [frames, setFrames] = useState(0);

  useEffect(() => {
    if (!enabled) return;
    let socket: WebSocket | null = null;
    let retry: ReturnType<typeof setTimeout> | null = null;
    let stopped = false;

    const connect = () => {
      const scheme = window.location.protocol === "https:" ? "wss" : "ws";
      socket = new WebSocket(`${scheme}://${window.location.host}${serviceBase()}/v1/live/ws`);
      socket.onopen = () => socket?.send(JSON.stringify({ token }));
      socket.onmessage = (event: MessageEvent<string>) => {
        const frame = JSON.parse(event.data) as Frame;
        if (frame.type === "live" && frame.data) {
          setLive(frame.data);
          setLink("live");
          setFrames((n) => n + 1);
        }
      };
      socket.onclose = (event: CloseEvent) => {
        if (stopped) return;
        setLink(event.code === 4401 ? "unauthorised" : "closed");
        if (event.code !== 4401) retry = setTimeout(connect, 2000);
      };
    };
    connect();
    return () => {
      stopped = true;
      if (retry) clearTimeout(retry);
      socket?.close();
    };
  }, [token, enabled]);

  return { live, link, frames };
}
