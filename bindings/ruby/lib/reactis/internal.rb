# frozen_string_literal: true

module Reactis
  # Conversions and the handle life cycle shared by the public classes.
  # Private: not part of the API.
  module Internal
    module_function

    # Longest single wait inside the C core, in milliseconds. Waits are woken
    # at once by Ruby's unblocking function (signals, Thread#kill); slicing is
    # only a safety net.
    SLICE_MS = 2000

    def monotonic
      Process.clock_gettime(Process::CLOCK_MONOTONIC)
    end

    def check_url(url)
      case url
      when String then url
      when URI::Generic then url.to_s
      else raise TypeError, "url must be a String, not #{url.class}"
      end
    end

    # Bytes for the core: a String as it is (any encoding: its bytes), a
    # Symbol as its name.
    def bytes(value, what = "value")
      case value
      when String then value
      when Symbol then value.to_s
      else raise TypeError, "#{what} must be a String, not #{value.class}"
      end
    end

    # A command argument: Strings as they are, Symbols and numbers as their
    # text (as redis-rb does). true, false and nil are refused: neither has
    # one obvious encoding.
    def arg(value)
      case value
      when String then value
      when Symbol, Integer then value.to_s
      when Float
        raise ArgumentError, "command argument #{value} is not finite" unless value.finite?
        value.to_s
      else
        raise TypeError, "command arguments must be String, Symbol, Integer or Float, " \
                         "not #{value.inspect}"
      end
    end

    def option_text(name, value)
      case value
      when true, false then value.to_s
      when Numeric
        raise ArgumentError, "#{name} must not be negative" if value.negative?
        value.to_s
      when String, Symbol then value.to_s
      else
        return value.to_path if value.respond_to?(:to_path)
        raise TypeError, "option #{name}: expected a String, number or boolean, not #{value.class}"
      end
    end

    # Sets each option (nil keeps the default) through the core, which knows
    # the names: an unknown one raises Reactis::URLError.
    def apply_options(handle, options)
      options.each do |name, value|
        next if value.nil?
        handle.set_option(name.to_s, option_text(name, value))
      end
    end

    # nil (binary, the default) or an Encoding.
    def encoding(value)
      return nil if value.nil?
      enc = value.is_a?(Encoding) ? value : Encoding.find(value.to_s)
      enc == Encoding::BINARY ? nil : enc
    end

    # Strings from Redis are binary unless the caller asked for an encoding.
    def recode(value, enc)
      return value if enc.nil?
      case value
      when String then value.force_encoding(enc)
      when Array then value.each { |v| recode(v, enc) }
      end
      value
    end

    def interrupted(rc, what)
      Interrupted.new("#{what}: #{Cimpl.strerror(rc)}", code: rc, name: Cimpl.errname(rc))
    end

    # Wakes a C handle that another thread may have just freed: a freed
    # handle refuses the call (ObjectPreviouslyDeleted) instead of crashing.
    def wake(handle)
      handle&.wakeup
    rescue RuntimeError
      nil
    end

    # A query on a handle that may have been freed meanwhile; default when so.
    def query(handle, default)
      return default if handle.nil?
      yield handle
    rescue RuntimeError
      default
    end

    def state_error(message)
      StateError.new(message, code: Cimpl::ESTATE, name: "ESTATE")
    end

    # Seconds (Numeric) to whole milliseconds for the core; nil stays nil.
    def ms(seconds, what)
      return nil if seconds.nil?
      raise TypeError, "#{what} must be a number of seconds, not #{seconds.class}" unless seconds.is_a?(Numeric)
      ms = (seconds * 1000).round
      # Past a C long long SWIG would say "Expected argument 5 of type long
      # long" (a TypeError); say what is wrong instead.
      raise RangeError, "#{what} of #{seconds} s is out of range" unless ms.between?(LLONG_MIN, LLONG_MAX)
      ms
    end

    LLONG_MAX = (2**63) - 1
    LLONG_MIN = -(2**63)
  end

  # The life cycle of a C handle shared by Client, Subscriber and Queue:
  # calls mark the handle busy; #close (from any thread, also from a trap
  # handler, so it takes no lock) wakes a busy handle and leaves freeing it
  # to the call that returns last, or frees it at once when idle.
  module HandleOwner
    # How often #settled runs a call again before it reports the interruption.
    RETRIES = 20

    # True once #close was called.
    def closed?
      @closing == true
    end

    # Closes the connection(s) and frees the C handle. Idempotent; safe from
    # any thread and from a trap handler. A call blocked in another thread is
    # woken and returns (a blocking iteration ends).
    def close
      return nil if @closing
      @closing = true
      h = @handle
      if h
        if @busy.positive?
          Internal.wake(h)
        else
          release_handle
        end
      end
      nil
    end

    private

    # Runs a call that does not wait for messages (everything but fetching)
    # and runs it again when its status is RX_EINTR or RX_WOKEN while
    # nothing was raised. Those statuses come only from the steps before the
    # command is written (connecting, loading the script), so nothing was
    # done and running it again is safe. By then the glue has run Ruby's
    # interrupts: a trap handler that raises, Thread#kill and Timeout end
    # the call there; a trap handler that only sets a flag lets it finish.
    # Raising Reactis::Interrupted instead made producers see "interrupted"
    # with no signal sent: after a stale wakeup byte, or (before the glue
    # retried such calls itself) when Ruby merely had an interrupt pending.
    def settled
      result = nil
      RETRIES.times do
        result = with_handle { |h| yield h }
        rc = result.is_a?(Array) ? result.first : result
        return result unless rc == Cimpl::EINTR || rc == Cimpl::WOKEN
      end
      result
    end

    def init_handle(handle)
      @handle = handle
      @busy = 0
      @closing = false
    end

    def with_handle
      h = @handle
      raise Internal.state_error("#{self.class.name.split('::').last.downcase} is closed") if h.nil? || @closing
      @busy += 1
      begin
        raise Internal.state_error("closed") if @closing
        yield h
      ensure
        @busy -= 1
        release_handle if @closing && @busy.zero?
      end
    end

    def release_handle
      h = @handle
      @handle = nil
      Cimpl.dispose(h) if h
    end
  end
end
