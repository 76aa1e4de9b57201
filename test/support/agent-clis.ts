// The pinned agent CLIs' installer lives in src/dev (the demo uses it too); tests keep importing it from here.
export * from '../../src/dev/agent-clis.js';
