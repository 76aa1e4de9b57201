// The scripted model server lives in src/dev (the demo uses it too); tests keep importing it from here.
export * from '../../src/dev/scripted-model-server.js';
