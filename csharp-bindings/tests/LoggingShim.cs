// A minimal stand-in for Microsoft.Extensions.Logging.Abstractions, compiled only into the mcs test build
// of the drop-in (test.sh), which has no NuGet. It has the same names and signatures as the parts the
// drop-in uses; the real package replaces it in the net10.0 project build (Sphana.Llm.Service.csproj).
using System;
using System.Collections.Generic;
using System.Globalization;
using System.Text;

namespace Microsoft.Extensions.Logging
{
    public enum LogLevel
    {
        Trace = 0,
        Debug = 1,
        Information = 2,
        Warning = 3,
        Error = 4,
        Critical = 5,
        None = 6,
    }

    public struct EventId
    {
        public EventId(int id, string name = null)
        {
            _id = id;
            _name = name;
        }

        private readonly int _id;
        private readonly string _name;

        public int Id
        {
            get { return _id; }
        }

        public string Name
        {
            get { return _name; }
        }
    }

    public interface ILogger
    {
        void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception exception, Func<TState, Exception, string> formatter);

        bool IsEnabled(LogLevel logLevel);

        IDisposable BeginScope<TState>(TState state);
    }

    public interface ILogger<out TCategoryName> : ILogger
    {
    }

    public static class LoggerExtensions
    {
        public static void LogDebug(this ILogger logger, string message, params object[] args)
        {
            Write(logger, LogLevel.Debug, null, message, args);
        }

        public static void LogInformation(this ILogger logger, string message, params object[] args)
        {
            Write(logger, LogLevel.Information, null, message, args);
        }

        public static void LogWarning(this ILogger logger, string message, params object[] args)
        {
            Write(logger, LogLevel.Warning, null, message, args);
        }

        public static void LogError(this ILogger logger, string message, params object[] args)
        {
            Write(logger, LogLevel.Error, null, message, args);
        }

        public static void LogError(this ILogger logger, Exception exception, string message, params object[] args)
        {
            Write(logger, LogLevel.Error, exception, message, args);
        }

        private static void Write(ILogger logger, LogLevel level, Exception exception, string template, object[] args)
        {
            string text = Format(template, args);
            logger.Log(level, new EventId(0), text, exception, (state, error) => state);
        }

        /// <summary>Fills "{Name}" / "{Name:F0}" holes with the arguments in order, as the real formatter does.</summary>
        internal static string Format(string template, object[] args)
        {
            var output = new StringBuilder();
            int next = 0;
            for (int i = 0; i < template.Length; i++)
            {
                char c = template[i];
                if (c == '{')
                {
                    int close = template.IndexOf('}', i);
                    if (close > i)
                    {
                        string hole = template.Substring(i + 1, close - i - 1);
                        int colon = hole.IndexOf(':');
                        string format = colon < 0 ? null : hole.Substring(colon + 1);
                        object value = next < args.Length ? args[next] : null;
                        next++;
                        var formattable = value as IFormattable;
                        output.Append(formattable != null && format != null
                            ? formattable.ToString(format, CultureInfo.InvariantCulture)
                            : Convert.ToString(value, CultureInfo.InvariantCulture));
                        i = close;
                        continue;
                    }
                }
                output.Append(c);
            }
            return output.ToString();
        }
    }
}
