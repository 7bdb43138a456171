using System.Runtime.CompilerServices;

// The console tests check internals (struct layouts against the library's defaults, live-handle and
// producer-thread counters for the leak tests).
[assembly: InternalsVisibleTo("Sphana.Llm.Tests")]
