# The Sidekiq worker of the harness: a no-op job that logs
# "index due_ms recv_ms" to $BENCH_OUT. Everything else is Sidekiq's default.
require "sidekiq"

class BenchJob
  include Sidekiq::Worker
  OUT = File.open(ENV.fetch("BENCH_OUT", "/dev/null"), "a")
  LOCK = Mutex.new

  def perform(payload)
    recv = Process.clock_gettime(Process::CLOCK_REALTIME, :float_millisecond)
    i, due, = payload.split(":", 3)
    LOCK.synchronize do
      OUT.write("#{i} #{due} #{format('%.3f', recv)}\n")
      OUT.flush
    end
  end
end
